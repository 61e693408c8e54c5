//! `--additional-request-params` checks, shared by `validate-params` and
//! `build-request` so a bad value fails the same way in both. The keys every
//! plugin reads alike are checked in `plugin_kit::params`.

use serde_json::{Map, Value};

pub use crate::params::{parse, show, truncate_chars};

use crate::model::Log;

/// Checks the keys this plugin interprets. `log` receives warnings about
/// keys that are accepted but ignored.
pub fn check(params: &Map<String, Value>, log: &mut dyn Log) -> Result<(), String> {
    if params.contains_key("use_prompt_format") {
        return Err(
            "`use_prompt_format` is a Baseten option; OpenAI-compatible servers take chat \
             messages only. Remove it, or use --api-backend baseten"
                .to_owned(),
        );
    }
    crate::params::check_common(params, log)?;
    if params.contains_key("custom_messages") && params.contains_key("system_message") {
        return Err(
            "`system_message` cannot be used with `custom_messages`: put the system \
             message first in `custom_messages`, or remove `custom_messages`"
                .to_owned(),
        );
    }
    system_message(params)?;
    Ok(())
}

/// `system_message` (genai-bench's name): a system prompt sent before the
/// user message. Must be a string when present; null means none.
pub fn system_message(params: &Map<String, Value>) -> Result<Option<&str>, String> {
    match params.get("system_message") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(format!(
            "`system_message` must be a string such as \"You are a helpful assistant.\", got {}",
            show(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Level;

    struct Collect(Vec<(Level, String)>);
    impl Log for Collect {
        fn log(&mut self, level: Level, message: &str) {
            self.0.push((level, message.to_owned()));
        }
    }

    fn validate(json: &str) -> Result<Vec<(Level, String)>, String> {
        let mut log = Collect(Vec::new());
        check(&parse(json)?, &mut log)?;
        Ok(log.0)
    }

    #[test]
    fn accepts_good_params() {
        assert_eq!(validate("{}"), Ok(vec![]));
        assert_eq!(validate(""), Ok(vec![]));
        assert!(
            validate(
                r#"{"temperature": 0.7, "max_tokens": 5,
                    "custom_messages": [{"role": "user", "content": "hi"},
                                        {"role": "user", "content": [{"type": "text", "text": "x"}]}],
                    "top_p": 0.9}"#
            )
            .is_ok()
        );
        assert!(validate(r#"{"temperature": 0, "max_tokens": null}"#).is_ok());
        assert!(validate(r#"{"system_message": "Be brief.", "temperature": 1}"#).is_ok());
        assert!(validate(r#"{"system_message": null}"#).is_ok());
    }

    #[test]
    fn stream_is_accepted_with_a_warning() {
        let logs = validate(r#"{"stream": false}"#).unwrap();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].0, Level::Warn);
        assert!(logs[0].1.contains("--disable-streaming"));
    }

    #[test]
    fn rejects_non_objects() {
        let e = validate("[1]").unwrap_err();
        assert!(e.contains("JSON object") && e.contains(r#"{"temperature": 0.7}"#));
        assert!(e.contains("[1]"), "{e}");
        let e = validate("{temperature: 1}").unwrap_err();
        assert!(e.contains("not valid JSON"), "{e}");
    }

    #[test]
    fn rejects_bad_values_naming_key_and_value() {
        let e = validate(r#"{"use_prompt_format": true}"#).unwrap_err();
        assert!(
            e.contains("use_prompt_format") && e.contains("--api-backend baseten"),
            "{e}"
        );
        let e = validate(r#"{"system_message": 5}"#).unwrap_err();
        assert!(e.contains("system_message") && e.contains('5'), "{e}");
        let e = validate(r#"{"temperature": -1}"#).unwrap_err();
        assert!(e.contains("temperature") && e.contains("-1") && e.contains(">= 0"));
        let e = validate(r#"{"temperature": "hot"}"#).unwrap_err();
        assert!(e.contains("\"hot\""));
        for bad in ["0", "-3", "1.5", "\"10\"", "true"] {
            let e = validate(&format!(r#"{{"max_tokens": {bad}}}"#)).unwrap_err();
            assert!(e.contains("max_tokens") && e.contains(bad), "{e}");
        }
    }

    #[test]
    fn rejects_bad_custom_messages() {
        for bad in [
            r#"[]"#,
            r#""hi""#,
            r#"[1]"#,
            r#"[{"content": "x"}]"#,
            r#"[{"role": 1, "content": "x"}]"#,
            r#"[{"role": "user"}]"#,
            r#"[{"role": "user", "content": 5}]"#,
        ] {
            let e = validate(&format!(r#"{{"custom_messages": {bad}}}"#)).unwrap_err();
            assert!(e.contains("custom_messages"), "{bad}: {e}");
        }
        let e = validate(
            r#"{"custom_messages": [{"role": "user", "content": "x"}], "system_message": "s"}"#,
        )
        .unwrap_err();
        assert!(e.contains("system_message"), "{e}");
    }

    #[test]
    fn truncates_by_chars() {
        assert_eq!(truncate_chars("héllo", 2), "hé...");
        assert_eq!(truncate_chars("hé", 2), "hé");
    }
}
