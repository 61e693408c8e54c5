//! Request sampling: what each benchmark request sends.
//!
//! A [`Sampler`] turns a task and a [`Scenario`] into a stream of
//! [`Sample`]s: prompts with an exact token count cut from a corpus (the
//! built-in one, or the user's text dataset as genai-bench does), embedding
//! documents, images, or the user's dataset rows as they are, plus the
//! output length and the per-request parameters that go with them.
//!
//! Output control follows genai-bench: a scenario with an output length
//! sets `max_tokens` to it and adds `min_tokens = max_tokens` and
//! `ignore_eos = true` to the request parameters, so the server generates
//! exactly that many tokens. Unlike genai-bench, parameters are built
//! fresh for every sample from the user's map, so nothing carries over
//! from one request or scenario to the next, and what the user set
//! explicitly always wins.
//!
//! Lengths: `N` draws `max(1, normal)` for input and output (genai-bench
//! clamps the output at 2), `U` draws whole numbers uniformly from the
//! closed ranges. A `P(prefix,suffix)/out` prompt is a prefix of exactly
//! `prefix` tokens (the same for every sampler of the scenario and
//! tokenizer, whatever their seeds), a blank line, and a fresh window:
//! `prefix + suffix` tokens in all, the blank line counting toward the
//! suffix.

pub mod corpus;
pub mod dataset;
pub mod images;

use std::sync::Arc;

use anyhow::{anyhow, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde_json::{Map, Value};

pub use corpus::{Corpus, Head, WarmUp};
pub use dataset::{Dataset, DatasetConfig, Entry, ImageRef};

use crate::plugin::Task;
use crate::scenarios::{MAX_TOKENS, Scenario};
use crate::tokenizer::TokenCounter;

/// Tokens of a synthetic text-to-image prompt.
const IMAGE_PROMPT_TOKENS: usize = 32;

/// Text sent with images when the dataset gives none.
pub const IMAGE_PROMPT: &str = "Describe this image.";

/// Text sent with several images when the dataset gives none.
pub const IMAGES_PROMPT: &str = "Describe these images.";

/// Between the shared prefix and the per-request suffix of `P` scenarios.
const PREFIX_SEPARATOR: &str = "\n\n";

/// Seeds the shared prefix of `P` scenarios, independently of the
/// sampler's seed, so that samplers of different workers share it.
const PREFIX_SEED: u64 = 0x5052_4546_4958; // "PREFIX"

/// Characters per token of genai-bench's `sonnet.txt` with `tokenizer`
/// (genai-bench's `calculate_sonnet_char_token_ratio`, which scales
/// `mean_total_chars_per_hour`); 0 if the text has no tokens.
pub fn character_token_ratio(tokenizer: &TokenCounter) -> f64 {
    let text = corpus::genai_bench_sonnets();
    match tokenizer.count(text) {
        0 => 0.0,
        tokens => text.chars().count() as f64 / tokens as f64,
    }
}

/// What one request sends.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// Text prompt (empty for embeddings).
    pub prompt: String,
    /// Images as `data:image/...;base64,...` (or dataset `http(s)`) URLs.
    pub image_urls: Vec<String>,
    /// Embedding inputs, or documents to rank.
    pub documents: Vec<String>,
    /// Rerank: the query.
    pub query: String,
    /// Text-to-image: width, height and number of images wanted.
    pub image_output: Option<(u32, u32, u32)>,
    /// Input tokens by the sampler's tokenizer (prompt, or all documents);
    /// `None` when unknown (requests with images).
    pub num_input_tokens: Option<u64>,
    /// Output length for this request; `None` for embeddings and when
    /// neither the scenario nor the user sets one.
    pub max_tokens: Option<u32>,
    /// Additional request parameters: the user's (without `max_tokens`,
    /// which is in [`Sample::max_tokens`]) plus the `min_tokens` and
    /// `ignore_eos` defaults.
    pub params: Map<String, Value>,
}

/// Draws [`Sample`]s for one task and scenario.
pub struct Sampler {
    task: Task,
    scenario: Scenario,
    tokenizer: TokenCounter,
    dataset: Option<Arc<Dataset>>,
    rng: StdRng,
    /// The user's additional parameters; for text generation without
    /// `max_tokens`, which is kept in `user_max_tokens`.
    user_params: Map<String, Value>,
    user_max_tokens: Option<u32>,
    /// Documents per embeddings request (genai-bench's batch size); 0
    /// counts as 1.
    pub batch_size: usize,
    /// Whether output-controlled requests get `min_tokens = max_tokens`
    /// (false is genai-bench's `--no-min-tokens`, e.g. for vLLM with
    /// speculative decoding).
    pub send_min_tokens: bool,
    /// Corpus for synthetic text (`D`, `N`, `U`, `P`, `E`).
    corpus: Option<Arc<Corpus>>,
    /// Shared prefix of a `P` scenario, with the separator appended.
    prefix: Option<Head>,
    /// Shortest input a text sample may have (a shared prefix's length).
    prefix_min_input: u32,
    /// Dataset rows with a prompt, and rows with images.
    prompt_rows: Vec<usize>,
    image_rows: Vec<usize>,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("task", &self.task)
            .field("scenario", &self.scenario.to_string())
            .field("tokenizer", &self.tokenizer.name())
            .field("dataset", &self.dataset.as_ref().map(|d| d.path()))
            .finish_non_exhaustive()
    }
}

impl Sampler {
    /// A sampler for `scenario` under `task`, counting with `tokenizer`,
    /// drawing from `dataset` if given, seeded with `seed` (give each
    /// concurrent sampler its own seed), and sending the user's additional
    /// request parameters `params`.
    ///
    /// With a text dataset, synthetic prompts (`D`, `N`, `U`, `P`, `E`) are
    /// cut from the dataset's prompts instead of the built-in corpus, as in
    /// genai-bench. `I` with an image dataset sends the dataset's images as
    /// they are (they are not resized); `I` without one generates images of
    /// the scenario's size, with the dataset's prompts if it has some.
    pub fn new(
        task: Task,
        scenario: Scenario,
        tokenizer: TokenCounter,
        dataset: Option<Arc<Dataset>>,
        seed: u64,
        mut params: Map<String, Value>,
    ) -> anyhow::Result<Self> {
        scenario.validate_for(task).map_err(|e| anyhow!(e))?;
        let user_max_tokens = if task.generates_text() {
            match params.remove("max_tokens") {
                None | Some(Value::Null) => None,
                Some(v) => Some(
                    v.as_u64()
                        .filter(|&n| (1..=u64::from(u32::MAX)).contains(&n))
                        .map(|n| n as u32)
                        .ok_or_else(|| {
                            anyhow!(
                                "additional request parameter max_tokens must be a positive \
                                 integer, got {v}"
                            )
                        })?,
                ),
            }
        } else {
            None
        };
        let rows = |pred: fn(&Entry) -> bool| -> Vec<usize> {
            dataset.as_ref().map_or_else(Vec::new, |d| {
                (0..d.len()).filter(|&i| pred(&d.entries()[i])).collect()
            })
        };
        let prompt_rows = rows(|e| e.prompt.is_some());
        let image_rows = rows(|e| !e.images.is_empty());
        let name = |d: &Option<Arc<Dataset>>| {
            d.as_ref()
                .map(|d| d.path().display().to_string())
                .unwrap_or_default()
        };
        if scenario == Scenario::Dataset {
            if dataset.is_none() {
                bail!(
                    "the 'dataset' traffic scenario needs --dataset-path; or pick a synthetic \
                     scenario such as {}",
                    Scenario::default_for(task)[0]
                );
            }
            match task {
                Task::ImageTextToText if image_rows.is_empty() => bail!(
                    "dataset '{}' has no images, which image-text-to-text needs: pass a folder of \
                     images, an image file, or a CSV/JSON/JSON Lines file with an image column",
                    name(&dataset)
                ),
                Task::ImageToEmbeddings if image_rows.is_empty() => bail!(
                    "dataset '{}' has no images, which image-to-embeddings needs",
                    name(&dataset)
                ),
                Task::TextToText
                | Task::TextToEmbeddings
                | Task::TextToRerank
                | Task::TextToImage
                | Task::TextToSpeech
                    if prompt_rows.is_empty() =>
                {
                    bail!(
                        "dataset '{}' has no text prompts, which {} needs",
                        name(&dataset),
                        task.as_str()
                    )
                }
                _ => {}
            }
        }
        if let (Scenario::Image { width, height, .. }, Some(d)) = (scenario, &dataset)
            && !image_rows.is_empty()
            && task != Task::TextToImage
        {
            tracing::info!(
                "traffic scenario {scenario}: sending the images of dataset '{}' as they are, \
                 not resized to {width}x{height}",
                d.path().display()
            );
        }
        let synthetic = matches!(
            scenario,
            Scenario::Deterministic { .. }
                | Scenario::Normal { .. }
                | Scenario::Uniform { .. }
                | Scenario::UniformMax { .. }
                | Scenario::Prefix { .. }
                | Scenario::Embedding { .. }
                | Scenario::Rerank { .. }
                | Scenario::Audio { .. }
        ) || (task == Task::TextToImage && scenario != Scenario::Dataset);
        let corpus = if !synthetic {
            None
        } else if let Some(d) = dataset.as_ref().filter(|_| !prompt_rows.is_empty()) {
            Some(d.corpus(&tokenizer)?)
        } else {
            Some(Corpus::builtin(&tokenizer))
        };
        let prefix = match (scenario, &corpus) {
            (Scenario::Prefix { prefix, .. }, Some(corpus)) => {
                let mut rng = StdRng::seed_from_u64(PREFIX_SEED ^ u64::from(prefix));
                Some(corpus.head(&mut rng, prefix as usize, PREFIX_SEPARATOR)?)
            }
            _ => None,
        };
        Ok(Self {
            task,
            scenario,
            tokenizer,
            dataset,
            rng: StdRng::seed_from_u64(seed),
            user_params: params,
            user_max_tokens,
            batch_size: 1,
            send_min_tokens: true,
            corpus,
            prefix,
            prefix_min_input: 0,
            prompt_rows,
            image_rows,
        })
    }

    /// genai-bench's `--prefix-len`/`--prefix-ratio`: every prompt starts
    /// with the same `tokens`-token prefix and a blank line, then a fresh
    /// window; the prompt's length still follows the scenario (`N` inputs
    /// shorter than the prefix are drawn again). The prefix depends only on
    /// `tokens` and the corpus, so every run and shard shares it.
    pub fn set_shared_prefix(&mut self, tokens: u32) -> anyhow::Result<()> {
        if tokens == 0 {
            return Ok(());
        }
        let corpus = self.corpus()?;
        let mut rng = StdRng::seed_from_u64(PREFIX_SEED ^ u64::from(tokens));
        self.prefix = Some(corpus.head(&mut rng, tokens as usize, PREFIX_SEPARATOR)?);
        self.prefix_min_input = tokens;
        Ok(())
    }

    /// The task samples are for.
    pub fn task(&self) -> Task {
        self.task
    }

    /// The scenario samples follow.
    pub fn scenario(&self) -> Scenario {
        self.scenario
    }

    /// The tokenizer that counts input tokens.
    pub fn tokenizer(&self) -> &TokenCounter {
        &self.tokenizer
    }

    /// The shared prefix of a `P` scenario (its separator included).
    pub fn prefix(&self) -> Option<&str> {
        self.prefix.as_ref().map(Head::text)
    }

    /// Tokenizes the whole corpus now rather than on first use, so that
    /// no timed sample pays for it and the sampler keeps up with any
    /// request rate. Tokens are read from, or saved to, `cache_dir` (see
    /// [`Corpus::warm_up_cached`]); samplers of the same tokenizer share
    /// them. `None` when the scenario samples no corpus text.
    pub fn warm_up(&self, cache_dir: Option<&std::path::Path>) -> anyhow::Result<Option<WarmUp>> {
        match &self.corpus {
            Some(c) => c.warm_up_cached(cache_dir).map(Some),
            None => Ok(None),
        }
    }

    /// The corpus prompts are cut from, if the scenario samples text.
    pub fn text_corpus(&self) -> Option<&Arc<Corpus>> {
        self.corpus.as_ref()
    }

    /// The next request's content.
    pub fn sample(&mut self) -> anyhow::Result<Sample> {
        match self.scenario {
            Scenario::Deterministic { input, output } => self.text_sample(input, output),
            Scenario::Normal {
                input_mean,
                input_sd,
                output_mean,
                output_sd,
            } => {
                let mut input = self.normal(input_mean, input_sd)?;
                // With a shared prefix, an input shorter than it is drawn
                // again (genai-bench resamples too); validation keeps the
                // prefix below mean - 3 sd, so this is rare.
                let mut tries = 0;
                while input < self.prefix_min_input {
                    tries += 1;
                    if tries > 1000 {
                        bail!(
                            "could not draw an input of at least {} tokens (the shared prefix) \
                             from N({input_mean},{input_sd})",
                            self.prefix_min_input
                        );
                    }
                    input = self.normal(input_mean, input_sd)?;
                }
                let output = self.normal(output_mean, output_sd)?;
                self.text_sample(input, output)
            }
            Scenario::Uniform {
                input_min,
                input_max,
                output_min,
                output_max,
            } => {
                let input = self.uniform(input_min, input_max);
                let output = self.uniform(output_min, output_max);
                self.text_sample(input, output)
            }
            Scenario::UniformMax {
                input_max,
                output_max,
            } => {
                let input = self.uniform(1, input_max);
                let output = self.uniform(1, output_max);
                self.text_sample(input, output)
            }
            Scenario::Prefix {
                prefix,
                suffix,
                output,
            } => {
                let target = prefix as usize + suffix as usize;
                let corpus = self.corpus()?;
                let (prompt, count) =
                    corpus.exact_text_after(&mut self.rng, self.prefix.as_ref(), target)?;
                Ok(self.generation(prompt, Some(count as u64), Vec::new(), Some(output)))
            }
            Scenario::Embedding { tokens } => {
                let corpus = self.corpus()?;
                let mut documents = Vec::with_capacity(self.batch_size.max(1));
                let mut total = 0;
                for _ in 0..self.batch_size.max(1) {
                    let (doc, count) = corpus.exact_text(&mut self.rng, tokens as usize)?;
                    documents.push(doc);
                    total += count as u64;
                }
                Ok(self.embedding(documents, total))
            }
            Scenario::Rerank { document, query } => {
                let corpus = self.corpus()?;
                let (query, mut total) = corpus.exact_text(&mut self.rng, query as usize)?;
                let mut documents = Vec::with_capacity(self.batch_size.max(1));
                for _ in 0..self.batch_size.max(1) {
                    let (doc, count) = corpus.exact_text(&mut self.rng, document as usize)?;
                    documents.push(doc);
                    total += count;
                }
                Ok(self.rerank(query, documents, total as u64))
            }
            Scenario::Audio { chars } => {
                let text = self.text_of_chars(chars as usize)?;
                let count = self.tokenizer.count(&text) as u64;
                Ok(self.plain(text, Some(count)))
            }
            Scenario::Image {
                width,
                height,
                count,
            } if self.task == Task::TextToImage => {
                // genai-bench's image prompt: a line of the corpus (the
                // dataset's prompts when it has some).
                let prompt = if self.prompt_rows.is_empty() {
                    self.corpus()?
                        .exact_text(&mut self.rng, IMAGE_PROMPT_TOKENS)?
                        .0
                } else {
                    self.pick(true)?.prompt.clone().unwrap_or_default()
                };
                let tokens = self.tokenizer.count(&prompt) as u64;
                let mut s = self.plain(prompt, Some(tokens));
                s.image_output = Some((width, height, count));
                Ok(s)
            }
            Scenario::Image {
                width,
                height,
                count,
            } => {
                let count = count as usize;
                let mut urls = Vec::with_capacity(count);
                let mut prompt = None;
                if self.image_rows.is_empty() {
                    for _ in 0..count {
                        let variant = self.rng.random_range(0..images::POOL_SIZE);
                        urls.push(images::synthetic_data_url(width, height, variant)?.to_string());
                    }
                    // Generated images go with the dataset's prompts, if any.
                    if !self.prompt_rows.is_empty() {
                        prompt = self.pick(true)?.prompt.clone();
                    }
                } else {
                    // Whole rows until there are enough images; the text is
                    // the first row's prompt, if it has one.
                    while urls.len() < count {
                        let row = self.pick(false)?;
                        if urls.is_empty() {
                            prompt = row.prompt.clone();
                        }
                        for image in row.images.iter().take(count - urls.len()) {
                            urls.push(image.to_url()?);
                        }
                    }
                }
                if self.task == Task::ImageToEmbeddings {
                    // No text: until the server counts the images' tokens,
                    // one per image, as genai-bench counts them.
                    let mut s = self.plain(String::new(), Some(urls.len() as u64));
                    s.image_urls = urls;
                    return Ok(s);
                }
                let prompt = prompt.unwrap_or_else(|| default_image_prompt(urls.len()));
                Ok(self.generation(prompt, None, urls, None))
            }
            Scenario::Dataset => self.dataset_sample(),
        }
    }

    fn corpus(&self) -> anyhow::Result<Arc<Corpus>> {
        self.corpus
            .clone()
            .ok_or_else(|| anyhow!("no corpus for traffic scenario {}", self.scenario))
    }

    /// A prompt of exactly `input` tokens with output length `output`.
    fn text_sample(&mut self, input: u32, output: u32) -> anyhow::Result<Sample> {
        let corpus = self.corpus()?;
        let (prompt, count) =
            corpus.exact_text_after(&mut self.rng, self.prefix.as_ref(), input as usize)?;
        Ok(self.generation(prompt, Some(count as u64), Vec::new(), Some(output)))
    }

    /// genai-bench's `max(1, int(normal(mean, sd)))`, capped at
    /// [`MAX_TOKENS`].
    fn normal(&mut self, mean: u32, sd: u32) -> anyhow::Result<u32> {
        let dist = Normal::new(f64::from(mean), f64::from(sd))
            .map_err(|e| anyhow!("invalid normal distribution N({mean},{sd}): {e}"))?;
        let v = dist.sample(&mut self.rng);
        Ok(v.clamp(1.0, f64::from(MAX_TOKENS)) as u32)
    }

    /// A whole number drawn uniformly from `[max(min, 1), max]`.
    fn uniform(&mut self, min: u32, max: u32) -> u32 {
        let min = min.max(1);
        self.rng.random_range(min..=max.max(min))
    }

    /// A random dataset row with a prompt (`prompts`) or with images.
    fn pick(&mut self, prompts: bool) -> anyhow::Result<&Entry> {
        let rows = if prompts {
            &self.prompt_rows
        } else {
            &self.image_rows
        };
        let dataset = self
            .dataset
            .as_ref()
            .ok_or_else(|| anyhow!("traffic scenario {} has no dataset", self.scenario))?;
        if rows.is_empty() {
            bail!(
                "dataset '{}' has no {}",
                dataset.path().display(),
                if prompts { "prompts" } else { "images" }
            );
        }
        let row = rows[self.rng.random_range(0..rows.len())];
        Ok(&dataset.entries()[row])
    }

    fn dataset_sample(&mut self) -> anyhow::Result<Sample> {
        match self.task {
            Task::TextToText => {
                let prompt = self.pick(true)?.prompt.clone().unwrap_or_default();
                let count = self.tokenizer.count(&prompt) as u64;
                Ok(self.generation(prompt, Some(count), Vec::new(), None))
            }
            Task::TextToEmbeddings => {
                let mut documents = Vec::with_capacity(self.batch_size.max(1));
                let mut total = 0;
                for _ in 0..self.batch_size.max(1) {
                    let doc = self.pick(true)?.prompt.clone().unwrap_or_default();
                    total += self.tokenizer.count(&doc) as u64;
                    documents.push(doc);
                }
                Ok(self.embedding(documents, total))
            }
            Task::TextToRerank => {
                let query = self.pick(true)?.prompt.clone().unwrap_or_default();
                let mut total = self.tokenizer.count(&query) as u64;
                let mut documents = Vec::with_capacity(self.batch_size.max(1));
                for _ in 0..self.batch_size.max(1) {
                    let doc = self.pick(true)?.prompt.clone().unwrap_or_default();
                    total += self.tokenizer.count(&doc) as u64;
                    documents.push(doc);
                }
                Ok(self.rerank(query, documents, total))
            }
            Task::TextToSpeech | Task::TextToImage => {
                let prompt = self.pick(true)?.prompt.clone().unwrap_or_default();
                let count = self.tokenizer.count(&prompt) as u64;
                Ok(self.plain(prompt, Some(count)))
            }
            Task::ImageToEmbeddings => {
                let images = self
                    .pick(false)?
                    .images
                    .iter()
                    .map(ImageRef::to_url)
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let mut s = self.plain(String::new(), Some(images.len() as u64));
                s.image_urls = images;
                Ok(s)
            }
            Task::ImageTextToText => {
                let row = self.pick(false)?;
                let prompt = row.prompt.clone();
                let images = row
                    .images
                    .iter()
                    .map(ImageRef::to_url)
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let prompt = prompt.unwrap_or_else(|| default_image_prompt(images.len()));
                Ok(self.generation(prompt, None, images, None))
            }
        }
    }

    /// A text-generation sample. With a scenario output length, the
    /// output is fixed (`max_tokens`, `min_tokens`, `ignore_eos`) unless
    /// the user set those parameters; without one only the user's
    /// `max_tokens`, if any, applies.
    fn generation(
        &self,
        prompt: String,
        num_input_tokens: Option<u64>,
        image_urls: Vec<String>,
        output: Option<u32>,
    ) -> Sample {
        let mut params = self.user_params.clone();
        let max_tokens = self.user_max_tokens.or(output);
        if let (Some(max), Some(_)) = (max_tokens, output) {
            if self.send_min_tokens {
                default_param(&mut params, "min_tokens", Value::from(max));
            }
            default_param(&mut params, "ignore_eos", Value::Bool(true));
        }
        // An explicit null means "do not send".
        params.retain(|_, v| !v.is_null());
        Sample {
            prompt,
            image_urls,
            documents: Vec::new(),
            query: String::new(),
            image_output: None,
            num_input_tokens,
            max_tokens,
            params,
        }
    }

    /// A sample of `prompt` with the user's params and no output length
    /// (speech, image generation, image embeddings).
    fn plain(&self, prompt: String, num_input_tokens: Option<u64>) -> Sample {
        let mut params = self.user_params.clone();
        params.retain(|_, v| !v.is_null());
        Sample {
            prompt,
            image_urls: Vec::new(),
            documents: Vec::new(),
            query: String::new(),
            image_output: None,
            num_input_tokens,
            max_tokens: None,
            params,
        }
    }

    fn rerank(&self, query: String, documents: Vec<String>, total_tokens: u64) -> Sample {
        let mut s = self.embedding(documents, total_tokens);
        s.query = query;
        s
    }

    /// Text of exactly `chars` characters cut from the corpus (genai-bench's
    /// `_generate_text_by_chars` for `A(chars)`).
    fn text_of_chars(&mut self, chars: usize) -> anyhow::Result<String> {
        let corpus = self.corpus()?;
        let mut text = String::with_capacity(chars + 16);
        while text.chars().count() < chars {
            // About four characters per token; a window at a time.
            let want = (chars - text.chars().count()) / 3 + 8;
            let (more, _) = corpus.exact_text(&mut self.rng, want.min(4096))?;
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&more);
        }
        Ok(text.chars().take(chars).collect())
    }

    fn embedding(&self, documents: Vec<String>, total_tokens: u64) -> Sample {
        let mut params = self.user_params.clone();
        params.retain(|_, v| !v.is_null());
        Sample {
            prompt: String::new(),
            image_urls: Vec::new(),
            documents,
            query: String::new(),
            image_output: None,
            num_input_tokens: Some(total_tokens),
            max_tokens: None,
            params,
        }
    }
}

/// The text sent with `images` images when the dataset gives none.
fn default_image_prompt(images: usize) -> String {
    if images > 1 {
        IMAGES_PROMPT
    } else {
        IMAGE_PROMPT
    }
    .to_string()
}

/// Sets `key` unless the user set it (an explicit null included).
fn default_param(params: &mut Map<String, Value>, key: &str, value: Value) {
    if !params.contains_key(key) {
        params.insert(key.to_string(), value);
    }
}

#[cfg(test)]
mod tests;
