//! Traffic scenarios: genai-bench's `--traffic-scenario` grammar.
//!
//! A scenario says how long each request's input and output are. The forms
//! (numbers are tokens unless noted):
//!
//! | form | meaning |
//! |---|---|
//! | `D(in,out)` | every request has exactly `in` input and `out` output tokens |
//! | `N(mean,sd)/(mean,sd)` | input and output drawn per request from normal distributions |
//! | `U(min,max)/(min,max)` | input and output drawn per request uniformly from `[min, max]` |
//! | `U(max_in,max_out)` | the same with both minimums 1 |
//! | `P(prefix,suffix)/out` | one shared prefix per scenario plus a fresh suffix per request |
//! | `E(tokens)` | embeddings: documents of `tokens` tokens |
//! | `I(w,h)`, `I(w,h,n)` | `n` images (default 1) of `w`×`h` pixels per request |
//! | `dataset` | prompts taken as they are from `--dataset-path` |
//!
//! Unlike genai-bench, whitespace anywhere in the string is ignored, so
//! `D(100, 200)` (the form genai-bench's own help text shows, and then
//! rejects) parses; [`Scenario`]'s `Display` gives the canonical form
//! without spaces, which is also what result files are keyed by.

use std::fmt;
use std::str::FromStr;

use crate::plugin::Task;

/// Largest token count a scenario may ask for: bigger numbers are typos,
/// and a prompt that size would take gigabytes to build.
pub const MAX_TOKENS: u32 = 10_000_000;

/// Largest width or height of a generated image, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 16_384;

/// Largest number of images in one request.
pub const MAX_IMAGES: u32 = 64;

/// Longest text-to-speech input (`A(chars)`), in characters.
pub const MAX_SPEECH_CHARS: u32 = 1_000_000;

/// One traffic scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// `D(in,out)`: constant input and output lengths.
    Deterministic {
        /// Input tokens.
        input: u32,
        /// Output tokens.
        output: u32,
    },
    /// `N(mean_in,sd_in)/(mean_out,sd_out)`: lengths drawn from normal
    /// distributions, rounded down and clamped to at least 1.
    Normal {
        /// Mean input tokens.
        input_mean: u32,
        /// Standard deviation of input tokens.
        input_sd: u32,
        /// Mean output tokens.
        output_mean: u32,
        /// Standard deviation of output tokens.
        output_sd: u32,
    },
    /// `U(min_in,max_in)/(min_out,max_out)`: lengths drawn uniformly from
    /// the closed ranges (a minimum of 0 counts as 1, as in genai-bench).
    Uniform {
        /// Smallest input length.
        input_min: u32,
        /// Largest input length.
        input_max: u32,
        /// Smallest output length.
        output_min: u32,
        /// Largest output length.
        output_max: u32,
    },
    /// `U(max_in,max_out)`: genai-bench's two-number form, uniform in
    /// `[1, max]` for both lengths.
    UniformMax {
        /// Largest input length.
        input_max: u32,
        /// Largest output length.
        output_max: u32,
    },
    /// `P(prefix,suffix)/out`: a prefix shared by every request of the
    /// scenario, then a suffix unique to each request.
    Prefix {
        /// Shared prefix tokens.
        prefix: u32,
        /// Per-request suffix tokens.
        suffix: u32,
        /// Output tokens.
        output: u32,
    },
    /// `E(tokens)`: embedding documents of `tokens` tokens each.
    Embedding {
        /// Tokens per document.
        tokens: u32,
    },
    /// `I(w,h)` or `I(w,h,n)`: `count` images of `width`×`height` per
    /// request.
    Image {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// Images per request.
        count: u32,
    },
    /// `R(doc_tokens,query_tokens)`: rerank a batch of documents of
    /// `document` tokens each against a query of `query` tokens.
    Rerank {
        /// Tokens per document.
        document: u32,
        /// Tokens of the query.
        query: u32,
    },
    /// `A(chars)`: synthesize speech from a text of exactly `chars`
    /// characters.
    Audio {
        /// Characters of the text.
        chars: u32,
    },
    /// `dataset`: prompts from the dataset as they are.
    Dataset,
}

/// genai-bench's `--prefix-len` / `--prefix-ratio`: how many tokens every
/// prompt of a scenario shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SharedPrefix {
    /// A prefix of this many tokens.
    Len(u32),
    /// A prefix of this fraction of the input (deterministic inputs only).
    Ratio(f64),
}

impl SharedPrefix {
    /// The flag that set it, for messages.
    pub fn flag(&self) -> &'static str {
        match self {
            SharedPrefix::Len(_) => "--prefix-len",
            SharedPrefix::Ratio(_) => "--prefix-ratio",
        }
    }

    /// Prefix tokens for `scenario`, or why the scenario cannot have one
    /// (genai-bench's `validate_prefix_options`).
    pub fn tokens_for(&self, scenario: &Scenario) -> Result<u32, String> {
        let flag = self.flag();
        match (*self, *scenario) {
            (SharedPrefix::Ratio(r), Scenario::Deterministic { input, .. }) => {
                Ok((f64::from(input) * r).floor() as u32)
            }
            (SharedPrefix::Ratio(_), s) => Err(format!(
                "{flag} needs deterministic scenarios D(in,out), where every input has the \
                 same length; {s} is not (use --prefix-len for N and U scenarios)"
            )),
            (SharedPrefix::Len(n), s) => {
                let smallest = match s {
                    Scenario::Deterministic { input, .. } => i64::from(input),
                    Scenario::Normal {
                        input_mean,
                        input_sd,
                        ..
                    } => i64::from(input_mean) - 3 * i64::from(input_sd),
                    Scenario::Uniform { input_min, .. } => i64::from(input_min.max(1)),
                    Scenario::UniformMax { .. } => 1,
                    Scenario::Prefix { .. } => {
                        return Err(format!(
                            "{flag} cannot be combined with {s}, which has a shared prefix of its own"
                        ));
                    }
                    _ => {
                        return Err(format!(
                            "{flag} only applies to text scenarios (D, N, U); {s} is not one"
                        ));
                    }
                };
                if i64::from(n) > smallest {
                    Err(format!(
                        "{flag} {n} must be at most the smallest input of {s} ({smallest} tokens; \
                         D: input, N: mean - 3 sd, U: min)"
                    ))
                } else {
                    Ok(n)
                }
            }
        }
    }
}

/// Every accepted form with an example, for error messages.
const FORMS: &str = "accepted scenario forms:\n  \
    D(in,out)                   e.g. D(100,100)\n  \
    N(mean,sd)/(mean,sd)        e.g. N(480,240)/(300,150)\n  \
    U(min,max)/(min,max)        e.g. U(50,150)/(10,100)\n  \
    U(max_in,max_out)           e.g. U(1000,200)\n  \
    P(prefix,suffix)/out        e.g. P(2000,200)/100\n  \
    E(tokens)                   e.g. E(512)\n  \
    I(width,height)             e.g. I(512,512)\n  \
    I(width,height,images)      e.g. I(512,512,2)\n  \
    R(doc_tokens,query_tokens)  e.g. R(512,100)\n  \
    A(chars)                    e.g. A(500)\n  \
    dataset                     (prompts from --dataset-path)";

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        parse(&compact).map_err(|why| format!("invalid traffic scenario '{s}': {why}\n{FORMS}"))
    }
}

/// Parses a scenario with whitespace already removed.
fn parse(s: &str) -> Result<Scenario, String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    if s == "dataset" {
        return Ok(Scenario::Dataset);
    }
    let kind_len = s
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(s.len());
    let (kind, rest) = s.split_at(kind_len);
    let scenario = match kind {
        "D" => {
            let [input, output] = exact(&groups(rest, 1, "D(in,out)")?[0], "D")?;
            Scenario::Deterministic {
                input: tokens(input, "input length")?,
                output: tokens(output, "output length")?,
            }
        }
        "N" => {
            let g = groups(rest, 2, "N(mean,sd)/(mean,sd)")?;
            let [input_mean, input_sd] = exact(&g[0], "N")?;
            let [output_mean, output_sd] = exact(&g[1], "N")?;
            Scenario::Normal {
                input_mean: tokens(input_mean, "input mean")?,
                input_sd: bounded(input_sd, "input standard deviation")?,
                output_mean: tokens(output_mean, "output mean")?,
                output_sd: bounded(output_sd, "output standard deviation")?,
            }
        }
        "U" => {
            let g = groups_between(rest, 1, 2, "U(min,max)/(min,max) or U(max_in,max_out)")?;
            if g.len() == 1 {
                let [input_max, output_max] = exact(&g[0], "U")?;
                Scenario::UniformMax {
                    input_max: tokens(input_max, "maximum input length")?,
                    output_max: tokens(output_max, "maximum output length")?,
                }
            } else {
                let [input_min, input_max] = exact(&g[0], "U")?;
                let [output_min, output_max] = exact(&g[1], "U")?;
                let u = Scenario::Uniform {
                    input_min: bounded(input_min, "minimum input length")?,
                    input_max: tokens(input_max, "maximum input length")?,
                    output_min: bounded(output_min, "minimum output length")?,
                    output_max: tokens(output_max, "maximum output length")?,
                };
                if input_min > input_max {
                    return Err(format!(
                        "the input minimum {input_min} is larger than the maximum {input_max}"
                    ));
                }
                if output_min > output_max {
                    return Err(format!(
                        "the output minimum {output_min} is larger than the maximum {output_max}"
                    ));
                }
                u
            }
        }
        "P" => {
            let (group, out) = rest
                .split_once('/')
                .ok_or("P needs an output length after '/': P(prefix,suffix)/out")?;
            let [prefix, suffix] = exact(&groups(group, 1, "P(prefix,suffix)/out")?[0], "P")?;
            if out.is_empty() || !out.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "'{out}' after '/' is not a whole number of output tokens: P(prefix,suffix)/out"
                ));
            }
            Scenario::Prefix {
                prefix: tokens(prefix, "prefix length")?,
                suffix: tokens(suffix, "suffix length")?,
                output: tokens(number(out)?, "output length")?,
            }
        }
        "E" => {
            let g = groups(rest, 1, "E(tokens)")?;
            let [n] = exact(&g[0], "E")?;
            Scenario::Embedding {
                tokens: tokens(n, "document length")?,
            }
        }
        "R" => {
            let g = groups(rest, 1, "R(doc_tokens,query_tokens)")?;
            let [document, query] = exact(&g[0], "R")?;
            Scenario::Rerank {
                document: tokens(document, "document length")?,
                query: tokens(query, "query length")?,
            }
        }
        "A" => {
            let g = groups(rest, 1, "A(chars)")?;
            let [chars] = exact(&g[0], "A")?;
            if chars == 0 || chars > MAX_SPEECH_CHARS {
                return Err(format!(
                    "the text length {chars} must be between 1 and {MAX_SPEECH_CHARS} characters"
                ));
            }
            Scenario::Audio { chars }
        }
        "I" => {
            let g = groups(rest, 1, "I(width,height) or I(width,height,images)")?;
            let (width, height, count) = match g[0][..] {
                [w, h] => (w, h, 1),
                [w, h, n] => (w, h, n),
                _ => {
                    return Err(format!(
                        "I takes 2 or 3 numbers, got {}: I(width,height) or I(width,height,images)",
                        g[0].len()
                    ));
                }
            };
            Scenario::Image {
                width: side(width, "width")?,
                height: side(height, "height")?,
                count: match count {
                    1..=MAX_IMAGES => count,
                    _ => {
                        return Err(format!(
                            "the image count {count} must be between 1 and {MAX_IMAGES}"
                        ));
                    }
                },
            }
        }
        "" => return Err("it must start with a scenario letter".into()),
        other => {
            let hint = if other.eq_ignore_ascii_case("dataset") {
                " (write it in lower case: dataset)".to_string()
            } else if other.len() == 1 && "dnupeira".contains(other) {
                format!(
                    " (scenario letters are upper case: {})",
                    other.to_uppercase()
                )
            } else {
                String::new()
            };
            return Err(format!("unknown scenario type '{other}'{hint}"));
        }
    };
    Ok(scenario)
}

/// Parses exactly `n` parenthesised groups separated by `/`.
fn groups(s: &str, n: usize, form: &str) -> Result<Vec<Vec<u32>>, String> {
    groups_between(s, n, n, form)
}

/// Parses `min..=max` parenthesised groups of numbers separated by `/`,
/// e.g. `(1,2)/(3,4)`.
fn groups_between(s: &str, min: usize, max: usize, form: &str) -> Result<Vec<Vec<u32>>, String> {
    let parts: Vec<&str> = s.split('/').collect();
    if parts.len() < min || parts.len() > max {
        return Err(format!("expected the form {form}"));
    }
    parts
        .into_iter()
        .map(|p| {
            let inner = p
                .strip_prefix('(')
                .and_then(|p| p.strip_suffix(')'))
                .ok_or_else(|| format!("'{p}' is not a parenthesised list; expected {form}"))?;
            inner.split(',').map(number).collect()
        })
        .collect()
}

/// Destructures a group that must hold exactly `N` numbers.
fn exact<const N: usize>(group: &[u32], kind: &str) -> Result<[u32; N], String> {
    group.try_into().map_err(|_| {
        format!(
            "{kind} expects {N} numbers in each parenthesis, got {}",
            group.len()
        )
    })
}

fn number(s: &str) -> Result<u32, String> {
    if s.is_empty() {
        return Err("a number is missing".into());
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{s}' is not a whole non-negative number"));
    }
    s.parse::<u32>()
        .map_err(|_| format!("'{s}' is too large (at most {MAX_TOKENS})"))
}

/// A token count that must be at least 1.
fn tokens(n: u32, what: &str) -> Result<u32, String> {
    if n == 0 {
        return Err(format!("the {what} must be at least 1"));
    }
    bounded(n, what)
}

/// A number that may be 0 but not absurdly large.
fn bounded(n: u32, what: &str) -> Result<u32, String> {
    if n > MAX_TOKENS {
        return Err(format!("the {what} {n} is larger than {MAX_TOKENS}"));
    }
    Ok(n)
}

fn side(n: u32, what: &str) -> Result<u32, String> {
    if n == 0 || n > MAX_IMAGE_SIDE {
        return Err(format!(
            "the image {what} {n} must be between 1 and {MAX_IMAGE_SIDE} pixels"
        ));
    }
    Ok(n)
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Scenario::Deterministic { input, output } => write!(f, "D({input},{output})"),
            Scenario::Normal {
                input_mean,
                input_sd,
                output_mean,
                output_sd,
            } => write!(f, "N({input_mean},{input_sd})/({output_mean},{output_sd})"),
            Scenario::Uniform {
                input_min,
                input_max,
                output_min,
                output_max,
            } => write!(f, "U({input_min},{input_max})/({output_min},{output_max})"),
            Scenario::UniformMax {
                input_max,
                output_max,
            } => write!(f, "U({input_max},{output_max})"),
            Scenario::Prefix {
                prefix,
                suffix,
                output,
            } => write!(f, "P({prefix},{suffix})/{output}"),
            Scenario::Embedding { tokens } => write!(f, "E({tokens})"),
            // One image is the default, so `I(w,h,1)` prints as `I(w,h)`.
            Scenario::Image {
                width,
                height,
                count: 1,
            } => write!(f, "I({width},{height})"),
            Scenario::Image {
                width,
                height,
                count,
            } => write!(f, "I({width},{height},{count})"),
            Scenario::Rerank { document, query } => write!(f, "R({document},{query})"),
            Scenario::Audio { chars } => write!(f, "A({chars})"),
            Scenario::Dataset => f.write_str("dataset"),
        }
    }
}

impl Scenario {
    /// genai-bench's file-name form of the scenario: `/` and `,` become
    /// `_`, parentheses are dropped (`D(100,100)` → `D100_100`,
    /// `N(480,240)/(300,150)` → `N480_240_300_150`).
    pub fn file_name(&self) -> String {
        self.to_string()
            .chars()
            .filter(|c| !matches!(c, '(' | ')'))
            .map(|c| if matches!(c, '/' | ',') { '_' } else { c })
            .collect()
    }

    /// Checks that the scenario fits the task: `E` needs
    /// text-to-embeddings, `I` needs image-text-to-text, `D`/`N`/`U`/`P`
    /// need text-to-text. `dataset` fits every task but needs a dataset
    /// path, which the caller checks (see [`Scenario::needs_dataset`]).
    pub fn validate_for(&self, task: Task) -> Result<(), String> {
        let tasks = self.tasks();
        if tasks.is_empty() || tasks.contains(&task) {
            return Ok(());
        }
        let fits = match task {
            Task::TextToText => "D, N, U, P or dataset, e.g. D(100,100)",
            Task::ImageTextToText | Task::ImageToEmbeddings => "I or dataset, e.g. I(512,512)",
            Task::TextToImage => "I(width,height[,images]), e.g. I(1024,1024)",
            Task::TextToEmbeddings => "E or dataset, e.g. E(512)",
            Task::TextToRerank => "R(doc_tokens,query_tokens) or dataset, e.g. R(512,100)",
            Task::TextToSpeech => "A(chars) or dataset, e.g. A(500)",
        };
        let names: Vec<&str> = tasks.iter().map(|t| t.as_str()).collect();
        Err(format!(
            "traffic scenario '{self}' is for the {} task, not {}; for {} use {fits}",
            names.join(" or "),
            task.as_str(),
            task.as_str()
        ))
    }

    /// The tasks the scenario fits; empty for `dataset`, which fits all.
    pub fn tasks(&self) -> &'static [Task] {
        match self {
            Scenario::Dataset => &[],
            Scenario::Embedding { .. } => &[Task::TextToEmbeddings],
            // genai-bench reuses I(w,h[,n]): input images for the image
            // tasks, the size and number of images wanted for text-to-image.
            Scenario::Image { .. } => &[
                Task::ImageTextToText,
                Task::ImageToEmbeddings,
                Task::TextToImage,
            ],
            Scenario::Rerank { .. } => &[Task::TextToRerank],
            Scenario::Audio { .. } => &[Task::TextToSpeech],
            Scenario::Deterministic { .. }
            | Scenario::Normal { .. }
            | Scenario::Uniform { .. }
            | Scenario::UniformMax { .. }
            | Scenario::Prefix { .. } => &[Task::TextToText],
        }
    }

    /// Whether the scenario can only run with `--dataset-path`.
    pub fn needs_dataset(&self) -> bool {
        matches!(self, Scenario::Dataset)
    }

    /// genai-bench's default scenarios for a task when the user names none
    /// and gives no dataset (with a dataset the default is `[dataset]`).
    ///
    /// For image-text-to-text this is upstream genai-bench's `I(512,512)`,
    /// `I(1024,512)`, `I(2048,2048)`; the Baseten fork's `ID(...)` forms are
    /// not implemented.
    pub fn default_for(task: Task) -> Vec<Scenario> {
        let d = |input, output| Scenario::Deterministic { input, output };
        let image = |width, height| Scenario::Image {
            width,
            height,
            count: 1,
        };
        match task {
            Task::TextToText => vec![
                Scenario::Normal {
                    input_mean: 480,
                    input_sd: 240,
                    output_mean: 300,
                    output_sd: 150,
                },
                d(100, 100),
                d(100, 1000),
                d(2000, 200),
                d(7800, 200),
            ],
            Task::TextToEmbeddings => [64, 128, 256, 512, 1024]
                .into_iter()
                .map(|tokens| Scenario::Embedding { tokens })
                .collect(),
            Task::ImageTextToText | Task::ImageToEmbeddings => {
                vec![image(512, 512), image(1024, 512), image(2048, 2048)]
            }
            Task::TextToImage => vec![image(512, 512), image(1024, 1024), image(1024, 1792)],
            Task::TextToRerank => [64, 128, 256, 512, 1024, 2096, 4096]
                .into_iter()
                .map(|document| Scenario::Rerank {
                    document,
                    query: 100,
                })
                .collect(),
            Task::TextToSpeech => [100, 500, 1000, 2000, 4000]
                .into_iter()
                .map(|chars| Scenario::Audio { chars })
                .collect(),
        }
    }

    /// The output length the scenario fixes for every request, if any
    /// (`D` and `P`); `N` and `U` draw one per request.
    pub fn fixed_output(&self) -> Option<u32> {
        match *self {
            Scenario::Deterministic { output, .. } | Scenario::Prefix { output, .. } => {
                Some(output)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Scenario {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn canonical_forms_round_trip() {
        for s in [
            "D(100,100)",
            "N(480,240)/(300,150)",
            "U(50,150)/(10,100)",
            "U(1000,200)",
            "P(2000,200)/100",
            "E(512)",
            "I(512,512)",
            "I(1024,512,3)",
            "dataset",
            "N(10,0)/(5,0)",
            "U(0,10)/(0,5)",
        ] {
            assert_eq!(p(s).to_string(), s);
            assert_eq!(p(&p(s).to_string()), p(s));
        }
    }

    #[test]
    fn parses_fields() {
        assert_eq!(
            p("D(100,200)"),
            Scenario::Deterministic {
                input: 100,
                output: 200
            }
        );
        assert_eq!(
            p("U(5,6)"),
            Scenario::UniformMax {
                input_max: 5,
                output_max: 6
            }
        );
        assert_eq!(
            p("P(1,2)/3"),
            Scenario::Prefix {
                prefix: 1,
                suffix: 2,
                output: 3
            }
        );
        assert_eq!(
            p("I(3,4)"),
            Scenario::Image {
                width: 3,
                height: 4,
                count: 1
            }
        );
    }

    #[test]
    fn whitespace_is_ignored() {
        assert_eq!(p(" D(100, 200) ").to_string(), "D(100,200)");
        assert_eq!(
            p("N( 480 , 240 ) / (300,150)").to_string(),
            "N(480,240)/(300,150)"
        );
    }

    #[test]
    fn explicit_single_image_prints_short_form() {
        assert_eq!(p("I(512,512,1)").to_string(), "I(512,512)");
    }

    #[test]
    fn file_names_follow_genai_bench() {
        assert_eq!(p("D(100,100)").file_name(), "D100_100");
        assert_eq!(p("N(480,240)/(300,150)").file_name(), "N480_240_300_150");
        assert_eq!(p("P(2000,200)/100").file_name(), "P2000_200_100");
        assert_eq!(p("I(512,512,2)").file_name(), "I512_512_2");
        assert_eq!(p("dataset").file_name(), "dataset");
    }

    #[test]
    fn errors_name_the_problem_and_list_forms() {
        for (s, why) in [
            ("", "empty"),
            ("X(1,2)", "unknown scenario type 'X'"),
            ("d(1,2)", "upper case"),
            ("Dataset", "lower case"),
            ("D(1)", "expects 2 numbers"),
            ("D(1,2,3)", "expects 2 numbers"),
            ("D(0,5)", "input length must be at least 1"),
            ("D(5,0)", "output length must be at least 1"),
            ("D(-1,5)", "'-1' is not a whole"),
            ("D(1.5,5)", "'1.5' is not a whole"),
            ("D(1,)", "a number is missing"),
            ("D[1,2]", "not a parenthesised list"),
            ("D(1,2", "not a parenthesised list"),
            ("N(1,2)", "expected the form N"),
            ("U(5,1)/(1,2)", "input minimum 5 is larger"),
            ("U(1,5)/(3,2)", "output minimum 3 is larger"),
            ("U(1,2)/(3,4)/(5,6)", "expected the form U"),
            ("P(1,2)", "needs an output length"),
            ("P(1,2)/x", "'x' after '/'"),
            ("P(1,2)/", "'' after '/'"),
            ("E(0)", "document length must be at least 1"),
            ("I(512)", "I takes 2 or 3 numbers"),
            ("I(0,5)", "width 0 must be between"),
            ("I(5,99999)", "height 99999 must be between"),
            ("I(5,5,0)", "image count 0"),
            ("D(99999999999,1)", "too large"),
            ("D(20000000,1)", "larger than 10000000"),
        ] {
            let err = s.parse::<Scenario>().unwrap_err();
            assert!(err.contains(why), "{s}: {err}");
            assert!(err.contains("e.g. P(2000,200)/100"), "{s}: {err}");
            assert!(err.contains(&format!("'{s}'")), "{s}: {err}");
        }
    }

    #[test]
    fn validate_for_tasks() {
        use Task::*;
        assert!(p("D(1,1)").validate_for(TextToText).is_ok());
        assert!(p("P(1,1)/1").validate_for(TextToText).is_ok());
        assert!(p("E(1)").validate_for(TextToEmbeddings).is_ok());
        assert!(p("I(1,1)").validate_for(ImageTextToText).is_ok());
        for t in [TextToText, ImageTextToText, TextToEmbeddings] {
            assert!(p("dataset").validate_for(t).is_ok());
        }
        let err = p("E(10)").validate_for(TextToText).unwrap_err();
        assert!(err.contains("text-to-embeddings") && err.contains("D(100,100)"));
        assert!(p("D(1,1)").validate_for(TextToEmbeddings).is_err());
        assert!(p("U(1,1)").validate_for(ImageTextToText).is_err());
        assert!(p("I(1,1)").validate_for(TextToText).is_err());
        assert!(p("dataset").needs_dataset() && !p("D(1,1)").needs_dataset());
        // genai-bench 0.0.5's newer tasks.
        assert!(p("R(512,100)").validate_for(TextToRerank).is_ok());
        assert!(p("A(500)").validate_for(TextToSpeech).is_ok());
        for t in [TextToImage, ImageToEmbeddings, ImageTextToText] {
            assert!(p("I(1024,1024,2)").validate_for(t).is_ok());
        }
        let err = p("A(5)").validate_for(TextToRerank).unwrap_err();
        assert!(
            err.contains("is for the text-to-speech task") && err.contains("R(512,100)"),
            "{err}"
        );
        assert_eq!(p("R(64,100)").to_string(), "R(64,100)");
        assert_eq!(p("A(100)").file_name(), "A100");
        assert!("A(0)".parse::<Scenario>().is_err());
        assert!("R(1)".parse::<Scenario>().is_err());
        assert_eq!(Scenario::default_for(TextToRerank).len(), 7);
        assert_eq!(Scenario::default_for(TextToSpeech)[1], p("A(500)"));
        assert_eq!(Scenario::default_for(TextToImage)[2], p("I(1024,1792)"));
    }

    #[test]
    fn defaults_match_genai_bench() {
        let names = |t| {
            Scenario::default_for(t)
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(Task::TextToText),
            [
                "N(480,240)/(300,150)",
                "D(100,100)",
                "D(100,1000)",
                "D(2000,200)",
                "D(7800,200)"
            ]
        );
        assert_eq!(
            names(Task::TextToEmbeddings),
            ["E(64)", "E(128)", "E(256)", "E(512)", "E(1024)"]
        );
        assert_eq!(
            names(Task::ImageTextToText),
            ["I(512,512)", "I(1024,512)", "I(2048,2048)"]
        );
        for t in [
            Task::TextToText,
            Task::TextToEmbeddings,
            Task::ImageTextToText,
        ] {
            for s in Scenario::default_for(t) {
                s.validate_for(t).unwrap();
            }
        }
    }
}
