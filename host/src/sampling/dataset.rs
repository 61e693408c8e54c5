//! User datasets (`--dataset-path`): prompts from text, CSV, JSON or JSON
//! Lines files, and images from image files or folders.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use serde_json::Value;

use super::corpus::{Corpus, CorpusCache};
use super::images;
use crate::tokenizer::TokenCounter;

/// File extensions read as images.
const IMAGE_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "gif", "webp"];

/// One dataset row: a prompt, images, or both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The row's prompt, if the dataset has prompts.
    pub prompt: Option<String>,
    /// The row's images.
    pub images: Vec<ImageRef>,
}

/// Where a dataset image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// A local image file, read when a request needs it.
    File(PathBuf),
    /// An `http(s)://` or `data:` URL, sent as it is.
    Url(String),
}

impl ImageRef {
    /// The URL to send: the URL itself, or the file as a `data:` URL.
    pub fn to_url(&self) -> anyhow::Result<String> {
        match self {
            ImageRef::File(path) => images::file_data_url(path),
            ImageRef::Url(url) => Ok(url.clone()),
        }
    }
}

/// A loaded dataset.
pub struct Dataset {
    path: PathBuf,
    entries: Vec<Entry>,
    corpus: CorpusCache,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("path", &self.path)
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// genai-bench's `--dataset-config` file (`genai_bench/data/config.py`).
/// Local files load as with `--dataset-path`; what this client cannot do
/// (download from the Hugging Face Hub, run Python) is refused with what
/// to do instead.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct DatasetConfig {
    /// Where the rows come from.
    pub source: DatasetSource,
    /// Column of the prompt.
    #[serde(default)]
    pub prompt_column: Option<String>,
    /// Column of the image.
    #[serde(default)]
    pub image_column: Option<String>,
    /// A Python lambda building the prompt from a row.
    #[serde(default)]
    pub prompt_lambda: Option<String>,
    /// Pillow's large-image switch (no effect here: images are sent as
    /// they are, never decoded).
    #[serde(default)]
    pub unsafe_allow_large_images: bool,
}

/// The `source` of a [`DatasetConfig`].
#[derive(Debug, Clone, serde::Deserialize)]
pub struct DatasetSource {
    /// `file`, `huggingface` or `custom`.
    #[serde(rename = "type")]
    pub kind: String,
    /// File path (or Hugging Face id).
    #[serde(default)]
    pub path: Option<String>,
    /// `csv`, `txt`, `json` or `jsonl` (default: from the extension).
    #[serde(default)]
    pub file_format: Option<String>,
}

impl DatasetConfig {
    /// Reads and checks a configuration file.
    pub fn from_file(path: &Path) -> anyhow::Result<DatasetConfig> {
        let shown = path.display();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--dataset-config {shown} cannot be read"))?;
        let config: DatasetConfig = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "--dataset-config {shown} is not a dataset configuration ({e}); expected e.g. \
                 {{\"source\": {{\"type\": \"file\", \"path\": \"prompts.jsonl\"}}, \
                 \"prompt_column\": \"question\"}}"
            )
        })?;
        match config.source.kind.as_str() {
            "file" => {}
            "huggingface" => bail!(
                "--dataset-config {shown}: source type 'huggingface' is not downloaded by this \
                 client (it sends no traffic but the benchmark's); save the split to a file once \
                 (e.g. `datasets` `load_dataset(...).to_json(\"rows.jsonl\")`) and use \
                 {{\"type\": \"file\", \"path\": \"rows.jsonl\"}}"
            ),
            "custom" => bail!(
                "--dataset-config {shown}: source type 'custom' runs a Python loader class, which \
                 this client does not run; write the loader's rows to a .jsonl file and use \
                 {{\"type\": \"file\"}}"
            ),
            other => bail!(
                "--dataset-config {shown}: source type '{other}' is not one of file, \
                 huggingface, custom"
            ),
        }
        if config.prompt_lambda.is_some() {
            bail!(
                "--dataset-config {shown}: prompt_lambda is Python code, which this client does \
                 not run; put the finished prompt in a column (e.g. jq '{{prompt: (\"Question: \" \
                 + .question)}}') and name it in prompt_column"
            );
        }
        if let Some(f) = &config.source.file_format
            && !matches!(f.as_str(), "csv" | "txt" | "json" | "jsonl")
        {
            bail!(
                "--dataset-config {shown}: file_format '{f}' is not one of csv, txt, json, jsonl"
            );
        }
        if config.source.path.as_deref().is_none_or(str::is_empty) {
            bail!("--dataset-config {shown}: source.path (the dataset file) is missing");
        }
        Ok(config)
    }

    /// The dataset file, relative paths taken from the configuration
    /// file's folder when they do not exist from the current one.
    pub fn dataset_path(&self, config_file: &Path) -> PathBuf {
        let p = PathBuf::from(self.source.path.as_deref().unwrap_or_default());
        if p.is_relative()
            && !p.exists()
            && let Some(dir) = config_file.parent()
        {
            return dir.join(p);
        }
        p
    }

    /// Loads the dataset it describes.
    pub fn load(&self, config_file: &Path) -> anyhow::Result<Dataset> {
        let path = self.dataset_path(config_file);
        let format = self.source.file_format.as_deref();
        Dataset::load_as(
            &path,
            format,
            self.prompt_column.as_deref(),
            self.image_column.as_deref(),
        )
        .with_context(|| format!("--dataset-config {}", config_file.display()))
    }
}

impl Dataset {
    /// Loads prompts or images from `path`:
    ///
    /// * `.txt`: one prompt per non-empty line;
    /// * `.csv`: the `prompt_column` column (needed when the file has more
    ///   than one column);
    /// * `.json`: an array of strings, or of objects holding `prompt_column`;
    /// * `.jsonl`: one string or object per line, as for `.json`;
    /// * a `.jpg`/`.jpeg`/`.png`/`.gif`/`.webp` file: one image;
    /// * a folder: its image files (not recursive), in name order.
    pub fn load(path: &Path, prompt_column: Option<&str>) -> anyhow::Result<Dataset> {
        Self::load_with_images(path, prompt_column, None)
    }

    /// Like [`Dataset::load`], and for CSV/JSON/JSON Lines files also reads
    /// `image_column`: an image path (relative to the dataset file's
    /// folder), an `http(s)://` or `data:` URL, or (JSON) a list of those.
    pub fn load_with_images(
        path: &Path,
        prompt_column: Option<&str>,
        image_column: Option<&str>,
    ) -> anyhow::Result<Dataset> {
        Self::load_as(path, None, prompt_column, image_column)
    }

    /// Like [`Dataset::load_with_images`], reading the file as `format`
    /// (`txt`, `csv`, `json`, `jsonl`) instead of by its extension.
    pub fn load_as(
        path: &Path,
        format: Option<&str>,
        prompt_column: Option<&str>,
        image_column: Option<&str>,
    ) -> anyhow::Result<Dataset> {
        let shown = path.display();
        let meta =
            std::fs::metadata(path).with_context(|| format!("dataset '{shown}' cannot be read"))?;
        let entries = if meta.is_dir() {
            image_folder(path)?
        } else {
            let ext = match format {
                Some(f) => f.to_ascii_lowercase(),
                None => path
                    .extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase)
                    .unwrap_or_default(),
            };
            if image_column.is_some() && !matches!(ext.as_str(), "csv" | "json" | "jsonl") {
                bail!("dataset '{shown}': an image column needs a .csv, .json or .jsonl file");
            }
            let columns = Columns {
                prompt: prompt_column,
                image: image_column,
            };
            match ext.as_str() {
                "txt" => text_lines(path)?,
                "csv" => csv_rows(path, columns)?,
                "json" => json_rows(path, columns)?,
                "jsonl" => jsonl_rows(path, columns)?,
                e if IMAGE_EXTENSIONS.contains(&e) => {
                    check_image(path)?;
                    vec![Entry {
                        prompt: None,
                        images: vec![ImageRef::File(path.to_path_buf())],
                    }]
                }
                _ => bail!(
                    "dataset '{shown}' has an unsupported type: use a .txt, .csv, .json or .jsonl \
                     file of prompts, an image file (.jpg, .jpeg, .png, .gif, .webp) or a folder \
                     of images"
                ),
            }
        };
        if entries.is_empty() {
            bail!("dataset '{shown}' holds no prompts or images");
        }
        Ok(Dataset {
            path: path.to_path_buf(),
            entries,
            corpus: CorpusCache::default(),
        })
    }

    /// A dataset from entries already in memory (`path` only names it).
    pub fn from_entries(path: impl Into<PathBuf>, entries: Vec<Entry>) -> anyhow::Result<Self> {
        let path = path.into();
        if entries.is_empty() {
            bail!("dataset '{}' holds no prompts or images", path.display());
        }
        Ok(Dataset {
            path,
            entries,
            corpus: CorpusCache::default(),
        })
    }

    /// The path the dataset was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All rows.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no rows (never true for a loaded dataset).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether any row has a prompt.
    pub fn has_prompts(&self) -> bool {
        self.entries.iter().any(|e| e.prompt.is_some())
    }

    /// Whether any row has an image.
    pub fn has_images(&self) -> bool {
        self.entries.iter().any(|e| !e.images.is_empty())
    }

    /// The prompts joined by newlines, tokenized with `tokenizer` on first
    /// use: genai-bench cuts synthetic prompts from the user's dataset when
    /// one is given.
    pub fn corpus(&self, tokenizer: &TokenCounter) -> anyhow::Result<Arc<Corpus>> {
        self.corpus.get(tokenizer, || {
            let mut text = String::new();
            for p in self.entries.iter().filter_map(|e| e.prompt.as_deref()) {
                text.push_str(p);
                text.push('\n');
            }
            text
        })
    }
}

#[derive(Clone, Copy)]
struct Columns<'a> {
    prompt: Option<&'a str>,
    image: Option<&'a str>,
}

fn text_lines(path: &Path) -> anyhow::Result<Vec<Entry>> {
    let text = read_text(path)?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| Entry {
            prompt: Some(l.to_string()),
            images: Vec::new(),
        })
        .collect())
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("dataset '{}' cannot be read", path.display()))?;
    String::from_utf8(bytes)
        .map_err(|e| anyhow::anyhow!("dataset '{}' is not UTF-8 text: {e}", path.display()))
}

/// Picks the prompt column among `available` (the image column aside).
fn prompt_column<'a>(
    path: &Path,
    available: &'a [String],
    columns: Columns<'_>,
) -> anyhow::Result<Option<&'a str>> {
    let list = available.join(", ");
    if let Some(want) = columns.prompt {
        return match available.iter().find(|c| *c == want) {
            Some(c) => Ok(Some(c)),
            None => bail!(
                "dataset '{}' has no column '{want}'; available columns: {list}",
                path.display()
            ),
        };
    }
    let candidates: Vec<&String> = available
        .iter()
        .filter(|c| Some(c.as_str()) != columns.image)
        .collect();
    match candidates[..] {
        [only] => Ok(Some(only)),
        [] if columns.image.is_some() => Ok(None),
        [] => bail!("dataset '{}' has no columns", path.display()),
        _ => bail!(
            "dataset '{}' has several columns ({list}): choose the prompt column with \
             --dataset-prompt-column",
            path.display()
        ),
    }
}

/// Resolves an image cell: a URL as is, a path relative to the dataset.
fn image_ref(path: &Path, row: &str, value: &str) -> anyhow::Result<ImageRef> {
    let value = value.trim();
    if value.starts_with("http://") || value.starts_with("https://") || value.starts_with("data:") {
        return Ok(ImageRef::Url(value.to_string()));
    }
    let file = path.parent().unwrap_or(Path::new(".")).join(value);
    check_image(&file).with_context(|| format!("dataset '{}' {row}", path.display()))?;
    Ok(ImageRef::File(file))
}

/// Checks that `file` exists and starts like an image.
fn check_image(file: &Path) -> anyhow::Result<()> {
    use std::io::Read;
    let mut head = [0u8; 16];
    let n = std::fs::File::open(file)
        .and_then(|mut f| f.read(&mut head))
        .with_context(|| format!("cannot read image '{}'", file.display()))?;
    if images::sniff_mime(&head[..n]).is_none() {
        bail!(
            "'{}' is not a JPEG, PNG, GIF or WebP image (unrecognised file header)",
            file.display()
        );
    }
    Ok(())
}

fn csv_rows(path: &Path, columns: Columns<'_>) -> anyhow::Result<Vec<Entry>> {
    let shown = path.display();
    let mut reader = csv::ReaderBuilder::new()
        .from_path(path)
        .with_context(|| format!("dataset '{shown}' cannot be read"))?;
    let headers: Vec<String> = reader
        .headers()
        .with_context(|| format!("dataset '{shown}': cannot read the CSV header"))?
        .iter()
        .map(str::to_string)
        .collect();
    let prompt = prompt_column(path, &headers, columns)?;
    let prompt_index = prompt.map(|p| headers.iter().position(|h| h == p).unwrap());
    let image_index = match columns.image {
        Some(want) => Some(headers.iter().position(|h| h == want).ok_or_else(|| {
            anyhow::anyhow!(
                "dataset '{shown}' has no image column '{want}'; available columns: {}",
                headers.join(", ")
            )
        })?),
        None => None,
    };
    let mut entries = Vec::new();
    for (i, record) in reader.records().enumerate() {
        // Row 1 is the header.
        let row = format!("row {}", i + 2);
        let record = record.with_context(|| format!("dataset '{shown}' {row} is not valid CSV"))?;
        let prompt = prompt_index
            .and_then(|i| record.get(i))
            .filter(|p| !p.trim().is_empty())
            .map(str::to_string);
        let images = match image_index.and_then(|i| record.get(i)) {
            Some(v) if !v.trim().is_empty() => vec![image_ref(path, &row, v)?],
            _ => Vec::new(),
        };
        push_entry(&mut entries, prompt, images);
    }
    Ok(entries)
}

fn push_entry(entries: &mut Vec<Entry>, prompt: Option<String>, images: Vec<ImageRef>) {
    if prompt.is_some() || !images.is_empty() {
        entries.push(Entry { prompt, images });
    }
}

fn json_rows(path: &Path, columns: Columns<'_>) -> anyhow::Result<Vec<Entry>> {
    let text = read_text(path)?;
    let value: Value = serde_json::from_str(&text)
        .with_context(|| format!("dataset '{}' is not valid JSON", path.display()))?;
    let Value::Array(rows) = value else {
        bail!(
            "dataset '{}' must hold a JSON array of strings or objects",
            path.display()
        );
    };
    let rows: Vec<(String, Value)> = rows
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("item {}", i + 1), v))
        .collect();
    value_rows(path, rows, columns)
}

fn jsonl_rows(path: &Path, columns: Columns<'_>) -> anyhow::Result<Vec<Entry>> {
    let text = read_text(path)?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let row = format!("line {}", i + 1);
        let value: Value = serde_json::from_str(line)
            .with_context(|| format!("dataset '{}' {row} is not valid JSON", path.display()))?;
        rows.push((row, value));
    }
    value_rows(path, rows, columns)
}

/// Rows of JSON values: strings are prompts; objects hold columns.
fn value_rows(
    path: &Path,
    rows: Vec<(String, Value)>,
    columns: Columns<'_>,
) -> anyhow::Result<Vec<Entry>> {
    let shown = path.display();
    // Columns are named by the first object (they are listed in errors).
    let keys: Vec<String> = rows
        .iter()
        .find_map(|(_, v)| v.as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let mut prompt = None;
    if !keys.is_empty() {
        prompt = prompt_column(path, &keys, columns)?;
    }
    let mut entries = Vec::new();
    for (row, value) in rows {
        match value {
            Value::String(s) => {
                if columns.image.is_some() {
                    bail!(
                        "dataset '{shown}' {row} is a string, not an object with an image column"
                    );
                }
                push_entry(
                    &mut entries,
                    Some(s).filter(|s| !s.trim().is_empty()),
                    Vec::new(),
                );
            }
            Value::Object(object) => {
                let text = match prompt {
                    None => None,
                    Some(column) => match object.get(column) {
                        Some(Value::String(s)) => Some(s.clone()),
                        Some(Value::Number(n)) => Some(n.to_string()),
                        Some(Value::Null) | None => None,
                        Some(_) => bail!("dataset '{shown}' {row}: column '{column}' is not text"),
                    },
                };
                let images = match columns.image.map(|c| (c, object.get(c))) {
                    None | Some((_, None | Some(Value::Null))) => Vec::new(),
                    Some((_, Some(Value::String(s)))) => vec![image_ref(path, &row, s)?],
                    Some((c, Some(Value::Array(items)))) => items
                        .iter()
                        .map(|item| match item.as_str() {
                            Some(s) => image_ref(path, &row, s),
                            None => bail!(
                                "dataset '{shown}' {row}: column '{c}' must hold image paths \
                                 or URLs"
                            ),
                        })
                        .collect::<anyhow::Result<_>>()?,
                    Some((c, Some(_))) => bail!(
                        "dataset '{shown}' {row}: column '{c}' must hold an image path or URL, \
                         or a list of them"
                    ),
                };
                push_entry(&mut entries, text.filter(|s| !s.trim().is_empty()), images);
            }
            _ => bail!("dataset '{shown}' {row} is neither a string nor an object"),
        }
    }
    Ok(entries)
}

fn image_folder(dir: &Path) -> anyhow::Result<Vec<Entry>> {
    let shown = dir.display();
    let mut files = Vec::new();
    for item in std::fs::read_dir(dir)
        .with_context(|| format!("dataset folder '{shown}' cannot be read"))?
    {
        let file = item
            .with_context(|| format!("dataset folder '{shown}' cannot be read"))?
            .path();
        let is_image = file
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if is_image && file.is_file() {
            check_image(&file)?;
            files.push(file);
        }
    }
    if files.is_empty() {
        bail!(
            "dataset folder '{shown}' has no image files (.jpg, .jpeg, .png, .gif, .webp); for \
             prompts pass a .txt, .csv, .json or .jsonl file"
        );
    }
    files.sort();
    Ok(files
        .into_iter()
        .map(|f| Entry {
            prompt: None,
            images: vec![ImageRef::File(f)],
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn prompts(d: &Dataset) -> Vec<&str> {
        d.entries()
            .iter()
            .filter_map(|e| e.prompt.as_deref())
            .collect()
    }

    fn err(path: &Path, column: Option<&str>) -> String {
        format!("{:#}", Dataset::load(path, column).unwrap_err())
    }

    #[test]
    fn txt_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "p.txt", "first prompt\n\n  \nsecond prompt\r\n");
        let d = Dataset::load(&p, None).unwrap();
        assert_eq!(prompts(&d), ["first prompt", "second prompt"]);
        assert!(d.has_prompts() && !d.has_images());
        let p = write(dir.path(), "e.txt", "\n\n");
        assert!(err(&p, None).contains("holds no prompts"));
    }

    #[test]
    fn csv_columns() {
        let dir = tempfile::tempdir().unwrap();
        let one = write(
            dir.path(),
            "one.csv",
            "text\nhello\n\"a, quoted\nprompt\"\n",
        );
        assert_eq!(
            prompts(&Dataset::load(&one, None).unwrap()),
            ["hello", "a, quoted\nprompt"]
        );
        let two = write(dir.path(), "two.csv", "id,question\n1,why?\n2,how?\n3,\n");
        let e = err(&two, None);
        assert!(
            e.contains("several columns (id, question)") && e.contains("--dataset-prompt-column"),
            "{e}"
        );
        let e = err(&two, Some("prompt"));
        assert!(
            e.contains("no column 'prompt'") && e.contains("available columns: id, question"),
            "{e}"
        );
        assert_eq!(
            prompts(&Dataset::load(&two, Some("question")).unwrap()),
            ["why?", "how?"]
        );
        let bad = write(dir.path(), "bad.csv", "a,b\n1,2\n3\n");
        let e = err(&bad, Some("a"));
        assert!(e.contains("row 3") && e.contains("bad.csv"), "{e}");
    }

    #[test]
    fn json_formats() {
        let dir = tempfile::tempdir().unwrap();
        let strings = write(dir.path(), "s.json", r#"["one", "two", ""]"#);
        assert_eq!(
            prompts(&Dataset::load(&strings, None).unwrap()),
            ["one", "two"]
        );
        let objects = write(
            dir.path(),
            "o.json",
            r#"[{"prompt": "p1", "id": 1}, {"prompt": "p2", "id": 2}]"#,
        );
        assert!(err(&objects, None).contains("several columns"));
        assert_eq!(
            prompts(&Dataset::load(&objects, Some("prompt")).unwrap()),
            ["p1", "p2"]
        );
        let single = write(dir.path(), "k.json", r#"[{"q": "x"}, {"q": 5}]"#);
        assert_eq!(prompts(&Dataset::load(&single, None).unwrap()), ["x", "5"]);
        let nested = write(dir.path(), "n.json", r#"[{"q": {"a": 1}}]"#);
        assert!(err(&nested, None).contains("item 1: column 'q' is not text"));
        let not_array = write(dir.path(), "a.json", r#"{"q": 1}"#);
        assert!(err(&not_array, None).contains("must hold a JSON array"));
        let broken = write(dir.path(), "b.json", "[1,");
        assert!(err(&broken, None).contains("is not valid JSON"));
    }

    #[test]
    fn jsonl_formats() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "p.jsonl",
            "{\"prompt\": \"a\"}\n\n\"b\"\n{\"prompt\": \"c\", \"x\": null}\n",
        );
        let d = Dataset::load(&p, Some("prompt")).unwrap();
        assert_eq!(prompts(&d), ["a", "b", "c"]);
        let bad = write(dir.path(), "b.jsonl", "{\"prompt\": \"a\"}\nnot json\n");
        let e = err(&bad, None);
        assert!(
            e.contains("b.jsonl") && e.contains("line 2 is not valid JSON"),
            "{e}"
        );
        let num = write(dir.path(), "n.jsonl", "3\n");
        assert!(err(&num, None).contains("line 1 is neither a string nor an object"));
    }

    #[test]
    fn missing_and_unsupported_files() {
        let dir = tempfile::tempdir().unwrap();
        let e = err(&dir.path().join("nope.txt"), None);
        assert!(
            e.contains("nope.txt") && e.contains("cannot be read"),
            "{e}"
        );
        let p = write(dir.path(), "data.parquet", "x");
        assert!(err(&p, None).contains("unsupported type"));
    }

    #[test]
    fn image_folders_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let jpeg = images::generate_jpeg(8, 8, 1).unwrap();
        std::fs::write(dir.path().join("b.jpg"), &jpeg).unwrap();
        std::fs::write(dir.path().join("a.PNG"), b"\x89PNG\r\n\x1a\n....").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        let d = Dataset::load(dir.path(), None).unwrap();
        assert_eq!(d.len(), 2);
        assert!(d.has_images() && !d.has_prompts());
        assert_eq!(
            d.entries()[0].images,
            [ImageRef::File(dir.path().join("a.PNG"))]
        );
        let url = d.entries()[1].images[0].to_url().unwrap();
        assert!(url.starts_with("data:image/jpeg;base64,"));
        let single = Dataset::load(&dir.path().join("b.jpg"), None).unwrap();
        assert_eq!(single.len(), 1);

        std::fs::write(dir.path().join("fake.png"), b"not an image").unwrap();
        let e = err(dir.path(), None);
        assert!(e.contains("fake.png") && e.contains("not a JPEG"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        assert!(err(empty.path(), None).contains("has no image files"));
    }

    #[test]
    fn image_columns() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("x.jpg"),
            images::generate_jpeg(4, 4, 2).unwrap(),
        )
        .unwrap();
        let p = write(
            dir.path(),
            "rows.jsonl",
            "{\"q\": \"what?\", \"img\": \"x.jpg\"}\n{\"q\": \"and?\", \"img\": [\"https://e.x/a.png\", \"x.jpg\"]}\n",
        );
        let d = Dataset::load_with_images(&p, None, Some("img")).unwrap();
        assert_eq!(prompts(&d), ["what?", "and?"]);
        assert_eq!(d.entries()[1].images.len(), 2);
        assert_eq!(
            d.entries()[1].images[0],
            ImageRef::Url("https://e.x/a.png".into())
        );
        let csv = write(dir.path(), "rows.csv", "img\nx.jpg\nmissing.jpg\n");
        let e = format!(
            "{:#}",
            Dataset::load_with_images(&csv, None, Some("img")).unwrap_err()
        );
        assert!(e.contains("row 3") && e.contains("missing.jpg"), "{e}");
        let e = format!(
            "{:#}",
            Dataset::load_with_images(&csv, None, Some("image")).unwrap_err()
        );
        assert!(
            e.contains("no column 'image'") || e.contains("no image column 'image'"),
            "{e}"
        );
    }
}
