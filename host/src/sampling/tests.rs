use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::images::tests::{decode_data_url, jpeg_size};
use super::*;
use crate::tokenizer::tests::test_tokenizer;

fn scenario(s: &str) -> Scenario {
    s.parse().unwrap()
}

fn params(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

fn sampler(task: Task, s: &str, p: Value) -> Sampler {
    Sampler::new(task, scenario(s), test_tokenizer(), None, 42, params(p)).unwrap()
}

fn with_dataset(task: Task, s: &str, dataset: Dataset, p: Value) -> anyhow::Result<Sampler> {
    Sampler::new(
        task,
        scenario(s),
        test_tokenizer(),
        Some(Arc::new(dataset)),
        42,
        params(p),
    )
}

fn text_dataset(lines: &[&str]) -> Dataset {
    let entries = lines
        .iter()
        .map(|l| Entry {
            prompt: Some(l.to_string()),
            images: Vec::new(),
        })
        .collect();
    Dataset::from_entries("test.txt", entries).unwrap()
}

#[test]
fn deterministic_prompts_have_exact_counts_and_fixed_output() {
    let tok = test_tokenizer();
    for (input, output) in [(1, 1), (7, 3), (100, 100), (2000, 200)] {
        let mut s = sampler(Task::TextToText, &format!("D({input},{output})"), json!({}));
        for _ in 0..3 {
            let x = s.sample().unwrap();
            assert_eq!(x.num_input_tokens, Some(input));
            assert_eq!(tok.count(&x.prompt) as u64, input, "{:?}", x.prompt);
            assert_eq!(x.max_tokens, Some(output));
            assert_eq!(
                x.params,
                params(json!({"min_tokens": output, "ignore_eos": true}))
            );
            assert!(x.image_urls.is_empty() && x.documents.is_empty());
        }
    }
}

#[test]
fn normal_draws_vary_and_stay_exact() {
    let tok = test_tokenizer();
    let mut s = sampler(Task::TextToText, "N(60,30)/(20,10)", json!({}));
    let mut inputs = std::collections::HashSet::new();
    for _ in 0..30 {
        let x = s.sample().unwrap();
        let n = x.num_input_tokens.unwrap();
        assert!(n >= 1);
        assert_eq!(tok.count(&x.prompt) as u64, n);
        let out = x.max_tokens.unwrap();
        assert!(out >= 1);
        assert_eq!(x.params["min_tokens"], json!(out));
        inputs.insert(n);
    }
    assert!(inputs.len() > 10, "{inputs:?}");
    // A zero standard deviation is constant.
    let mut s = sampler(Task::TextToText, "N(25,0)/(5,0)", json!({}));
    let x = s.sample().unwrap();
    assert_eq!((x.num_input_tokens, x.max_tokens), (Some(25), Some(5)));
}

#[test]
fn uniform_draws_stay_in_range() {
    let tok = test_tokenizer();
    let mut s = sampler(Task::TextToText, "U(20,40)/(5,8)", json!({}));
    for _ in 0..20 {
        let x = s.sample().unwrap();
        let n = x.num_input_tokens.unwrap();
        assert!((20..=40).contains(&n), "{n}");
        assert_eq!(tok.count(&x.prompt) as u64, n);
        assert!((5..=8).contains(&x.max_tokens.unwrap()));
    }
    let mut s = sampler(Task::TextToText, "U(30,4)", json!({}));
    let mut outs = std::collections::HashSet::new();
    for _ in 0..40 {
        let x = s.sample().unwrap();
        assert!((1..=30).contains(&x.num_input_tokens.unwrap()));
        outs.insert(x.max_tokens.unwrap());
    }
    assert_eq!(outs, (1..=4).collect());
}

#[test]
fn prefix_is_shared_and_suffix_fresh() {
    let tok = test_tokenizer();
    let mut a = sampler(Task::TextToText, "P(300,50)/20", json!({}));
    let prefix = a.prefix().unwrap().to_string();
    assert!(prefix.ends_with(PREFIX_SEPARATOR));
    assert_eq!(
        tok.count(prefix.strip_suffix(PREFIX_SEPARATOR).unwrap()),
        300
    );
    let mut suffixes = std::collections::HashSet::new();
    for _ in 0..5 {
        let x = a.sample().unwrap();
        assert!(x.prompt.starts_with(&prefix));
        assert_eq!(x.num_input_tokens, Some(350));
        assert_eq!(tok.count(&x.prompt), 350);
        assert_eq!(x.max_tokens, Some(20));
        suffixes.insert(x.prompt[prefix.len()..].to_string());
    }
    assert_eq!(suffixes.len(), 5);
    // Another worker's sampler (other seed) shares the prefix.
    let b = Sampler::new(
        Task::TextToText,
        scenario("P(300,50)/20"),
        test_tokenizer(),
        None,
        7,
        Map::new(),
    )
    .unwrap();
    assert_eq!(b.prefix(), Some(prefix.as_str()));
}

#[test]
fn embeddings_documents_have_exact_counts() {
    let tok = test_tokenizer();
    let mut s = sampler(Task::TextToEmbeddings, "E(64)", json!({"dimensions": 8}));
    s.batch_size = 3;
    let x = s.sample().unwrap();
    assert_eq!(x.documents.len(), 3);
    for d in &x.documents {
        assert_eq!(tok.count(d), 64);
    }
    assert_eq!(x.num_input_tokens, Some(192));
    assert_eq!((x.prompt.as_str(), x.max_tokens), ("", None));
    assert_eq!(x.params, params(json!({"dimensions": 8})));
    s.batch_size = 0; // counts as 1
    assert_eq!(s.sample().unwrap().documents.len(), 1);
}

#[test]
fn generated_images() {
    let mut s = sampler(Task::ImageTextToText, "I(64,48,2)", json!({}));
    let x = s.sample().unwrap();
    assert_eq!(x.image_urls.len(), 2);
    for url in &x.image_urls {
        let (mime, bytes) = decode_data_url(url);
        assert_eq!(mime, "image/jpeg");
        assert_eq!(jpeg_size(&bytes), Some((64, 48)));
    }
    assert_eq!(x.prompt, IMAGES_PROMPT);
    assert_eq!((x.num_input_tokens, x.max_tokens), (None, None));
    assert!(x.params.is_empty(), "{:?}", x.params);

    let mut s = sampler(Task::ImageTextToText, "I(16,16)", json!({"max_tokens": 30}));
    let x = s.sample().unwrap();
    assert_eq!((x.prompt.as_str(), x.max_tokens), (IMAGE_PROMPT, Some(30)));
    assert!(x.params.is_empty());
}

#[test]
fn user_params_win_and_nothing_leaks() {
    let user = json!({"temperature": 0.5, "ignore_eos": false, "min_tokens": 3});
    let mut s = sampler(Task::TextToText, "D(10,50)", user.clone());
    for _ in 0..2 {
        let x = s.sample().unwrap();
        assert_eq!(x.max_tokens, Some(50));
        assert_eq!(x.params, params(user.clone()));
    }
    // A user max_tokens replaces the scenario's and sets min_tokens.
    let mut s = sampler(Task::TextToText, "D(10,50)", json!({"max_tokens": 7}));
    let x = s.sample().unwrap();
    assert_eq!(x.max_tokens, Some(7));
    assert_eq!(
        x.params,
        params(json!({"min_tokens": 7, "ignore_eos": true}))
    );
    // null means "do not send".
    let mut s = sampler(
        Task::TextToText,
        "D(10,50)",
        json!({"min_tokens": null, "ignore_eos": null}),
    );
    assert!(s.sample().unwrap().params.is_empty());
    // genai-bench's --no-min-tokens.
    let mut s = sampler(Task::TextToText, "D(10,50)", json!({}));
    s.send_min_tokens = false;
    assert_eq!(
        s.sample().unwrap().params,
        params(json!({"ignore_eos": true}))
    );
    // Samples are independent: changing one changes no later one.
    let mut s = sampler(Task::TextToText, "N(20,5)/(40,20)", json!({"top_p": 0.9}));
    let mut first = s.sample().unwrap();
    first.params.insert("junk".into(), json!(1));
    for _ in 0..5 {
        let x = s.sample().unwrap();
        assert_eq!(x.params.len(), 3);
        assert_eq!(x.params["min_tokens"], json!(x.max_tokens.unwrap()));
    }
    // A dataset sampler after an output-controlled one adds nothing.
    let mut d = with_dataset(
        Task::TextToText,
        "dataset",
        text_dataset(&["hello there"]),
        json!({"top_p": 0.9}),
    )
    .unwrap();
    let x = d.sample().unwrap();
    assert_eq!(x.params, params(json!({"top_p": 0.9})));
    assert_eq!(x.max_tokens, None);
}

#[test]
fn bad_max_tokens_is_an_error() {
    for bad in [json!(0), json!(-1), json!("10"), json!(1.5)] {
        let err = Sampler::new(
            Task::TextToText,
            scenario("D(1,1)"),
            test_tokenizer(),
            None,
            1,
            params(json!({ "max_tokens": bad })),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("max_tokens must be a positive integer"),
            "{err}"
        );
    }
}

#[test]
fn dataset_text_prompts() {
    let tok = test_tokenizer();
    let mut s = with_dataset(
        Task::TextToText,
        "dataset",
        text_dataset(&["What is love?", "Tell me a story about a fox."]),
        json!({"max_tokens": 64}),
    )
    .unwrap();
    for _ in 0..10 {
        let x = s.sample().unwrap();
        assert!(x.prompt == "What is love?" || x.prompt == "Tell me a story about a fox.");
        assert_eq!(x.num_input_tokens, Some(tok.count(&x.prompt) as u64));
        assert_eq!(x.max_tokens, Some(64));
        assert!(x.params.is_empty());
    }
    let mut e = with_dataset(
        Task::TextToEmbeddings,
        "dataset",
        text_dataset(&["a b c", "d e f"]),
        json!({}),
    )
    .unwrap();
    e.batch_size = 4;
    let x = e.sample().unwrap();
    assert_eq!(x.documents.len(), 4);
    let total: usize = x.documents.iter().map(|d| tok.count(d)).sum();
    assert_eq!(x.num_input_tokens, Some(total as u64));
}

#[test]
fn synthetic_prompts_come_from_a_text_dataset() {
    let tok = test_tokenizer();
    let mut s = with_dataset(
        Task::TextToText,
        "D(40,5)",
        text_dataset(&["zebra quokka narwhal axolotl", "pangolin okapi"]),
        json!({}),
    )
    .unwrap();
    let x = s.sample().unwrap();
    assert_eq!(tok.count(&x.prompt), 40);
    assert!(!x.prompt.contains("LORD") && !x.prompt.contains("thee"));
    assert!(
        x.prompt.contains("okapi") || x.prompt.contains("zebra"),
        "{}",
        x.prompt
    );
}

fn image_dir(dir: &Path) {
    for i in 0..3 {
        let jpeg = images::generate_jpeg(10 + i, 10, i.into()).unwrap();
        std::fs::write(dir.join(format!("{i}.jpg")), jpeg).unwrap();
    }
    std::fs::write(dir.join("p.png"), b"\x89PNG\r\n\x1a\nfake body").unwrap();
}

#[test]
fn dataset_images() {
    let dir = tempfile::tempdir().unwrap();
    image_dir(dir.path());
    let dataset = Dataset::load(dir.path(), None).unwrap();
    let mut s = with_dataset(Task::ImageTextToText, "dataset", dataset, json!({})).unwrap();
    let mut mimes = std::collections::HashSet::new();
    for _ in 0..30 {
        let x = s.sample().unwrap();
        assert_eq!(x.image_urls.len(), 1);
        assert_eq!(x.prompt, IMAGE_PROMPT);
        assert_eq!((x.num_input_tokens, x.max_tokens), (None, None));
        mimes.insert(decode_data_url(&x.image_urls[0]).0);
    }
    assert_eq!(mimes.len(), 2, "{mimes:?}");

    // I(w,h,n) with an image dataset sends n of the dataset's images.
    let dataset = Dataset::load(dir.path(), None).unwrap();
    let mut s = with_dataset(Task::ImageTextToText, "I(512,512,3)", dataset, json!({})).unwrap();
    assert_eq!(s.sample().unwrap().image_urls.len(), 3);

    // A dataset prompt column goes with the images.
    let rows = dir.path().join("rows.jsonl");
    std::fs::write(&rows, "{\"q\": \"What animal?\", \"img\": \"0.jpg\"}\n").unwrap();
    let dataset = Dataset::load_with_images(&rows, Some("q"), Some("img")).unwrap();
    let mut s = with_dataset(Task::ImageTextToText, "dataset", dataset, json!({})).unwrap();
    assert_eq!(s.sample().unwrap().prompt, "What animal?");

    // Generated images with a text dataset's prompts.
    let mut s = with_dataset(
        Task::ImageTextToText,
        "I(8,8)",
        text_dataset(&["Count the circles."]),
        json!({}),
    )
    .unwrap();
    let x = s.sample().unwrap();
    assert_eq!(x.prompt, "Count the circles.");
    assert_eq!(x.image_urls.len(), 1);
}

#[test]
fn configuration_errors_are_clear() {
    let err = |r: anyhow::Result<Sampler>| format!("{:#}", r.unwrap_err());
    let e = err(Sampler::new(
        Task::TextToText,
        scenario("E(10)"),
        test_tokenizer(),
        None,
        1,
        Map::new(),
    ));
    assert!(e.contains("is for the text-to-embeddings task"), "{e}");
    let e = err(Sampler::new(
        Task::TextToText,
        scenario("dataset"),
        test_tokenizer(),
        None,
        1,
        Map::new(),
    ));
    assert!(e.contains("needs --dataset-path"), "{e}");
    let e = err(with_dataset(
        Task::ImageTextToText,
        "dataset",
        text_dataset(&["hi"]),
        json!({}),
    ));
    assert!(e.contains("has no images"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    image_dir(dir.path());
    let e = err(with_dataset(
        Task::TextToText,
        "dataset",
        Dataset::load(dir.path(), None).unwrap(),
        json!({}),
    ));
    assert!(e.contains("has no text prompts"), "{e}");
}

#[test]
fn seeds_make_samples_reproducible() {
    let run = |seed| {
        let mut s = Sampler::new(
            Task::TextToText,
            scenario("U(10,50)/(1,9)"),
            test_tokenizer(),
            None,
            seed,
            Map::new(),
        )
        .unwrap();
        (0..5).map(|_| s.sample().unwrap()).collect::<Vec<_>>()
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
}

#[test]
fn consecutive_prompts_differ() {
    let mut s = sampler(Task::TextToText, "D(50,5)", json!({}));
    let prompts: std::collections::HashSet<String> =
        (0..20).map(|_| s.sample().unwrap().prompt).collect();
    assert_eq!(prompts.len(), 20);
}

#[test]
fn character_token_ratio_of_the_sonnets() {
    let ratio = character_token_ratio(&test_tokenizer());
    // English prose runs at 3 to 5 characters per token.
    assert!((2.5..6.0).contains(&ratio), "{ratio}");
}

#[test]
fn rerank_speech_image_generation_and_image_embedding_samples() {
    let tok = test_tokenizer();
    let mut s = sampler(
        Task::TextToRerank,
        "R(40,12)",
        json!({"top_n": 2, "max_tokens": 9}),
    );
    s.batch_size = 3;
    let x = s.sample().unwrap();
    assert_eq!(x.documents.len(), 3);
    for d in &x.documents {
        assert_eq!(tok.count(d), 40);
    }
    assert_eq!(tok.count(&x.query), 12);
    assert_eq!(x.num_input_tokens, Some(3 * 40 + 12));
    // max_tokens is not a rerank parameter of the host: passed through as given.
    assert_eq!(x.max_tokens, None);
    assert_eq!(x.params, params(json!({"top_n": 2, "max_tokens": 9})));

    let mut s = sampler(Task::TextToSpeech, "A(500)", json!({"voice": "nova"}));
    let x = s.sample().unwrap();
    assert_eq!(x.prompt.chars().count(), 500);
    assert_eq!(x.num_input_tokens, Some(tok.count(&x.prompt) as u64));
    assert_eq!(x.params, params(json!({"voice": "nova"})));
    assert_ne!(s.sample().unwrap().prompt, x.prompt);

    let mut s = sampler(Task::TextToImage, "I(1024,512,2)", json!({}));
    let x = s.sample().unwrap();
    assert_eq!(x.image_output, Some((1024, 512, 2)));
    assert!(x.image_urls.is_empty() && !x.prompt.is_empty());
    assert_eq!(x.max_tokens, None);

    let mut s = sampler(Task::ImageToEmbeddings, "I(32,32,3)", json!({}));
    let x = s.sample().unwrap();
    assert_eq!(x.image_urls.len(), 3);
    assert!(x.prompt.is_empty() && x.documents.is_empty());
    // One per image until the server counts them (genai-bench's count).
    assert_eq!(
        (x.num_input_tokens, x.max_tokens, x.image_output),
        (Some(3), None, None)
    );
}
