//! `--additional-request-params` checks, shared by `validate-params` and
//! `build-request` so a bad value fails the same way in both. The keys every
//! plugin reads alike are checked in `plugin_kit::params`.

use serde_json::{Map, Value};

pub use plugin_kit::params::{parse, show, truncate_chars};

use crate::model::Log;

/// Checks the keys this plugin interprets. `log` receives warnings about
/// keys that are accepted but ignored.
pub fn check(params: &Map<String, Value>, log: &mut dyn Log) -> Result<(), String> {
    let prompt_format = use_prompt_format(params)?;
    plugin_kit::params::check_common(params, log)?;
    if prompt_format && params.contains_key("custom_messages") {
        return Err(
            "`custom_messages` cannot be used with `use_prompt_format: true`: \
             the prompt format sends a single `prompt` string and has no messages; \
             remove one of the two keys"
                .to_owned(),
        );
    }
    Ok(())
}

/// `use_prompt_format`, which must be a bool when present.
pub fn use_prompt_format(params: &Map<String, Value>) -> Result<bool, String> {
    match params.get("use_prompt_format") {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!(
            "`use_prompt_format` must be true or false, got {}",
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
                r#"{"temperature": 0.7, "max_tokens": 5, "use_prompt_format": false,
                    "custom_messages": [{"role": "user", "content": "hi"},
                                        {"role": "user", "content": [{"type": "text", "text": "x"}]}],
                    "top_p": 0.9}"#
            )
            .is_ok()
        );
        assert!(validate(r#"{"temperature": 0, "max_tokens": null}"#).is_ok());
        assert!(validate(r#"{"use_prompt_format": true, "temperature": 1}"#).is_ok());
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
        let e = validate(r#"{"use_prompt_format": "yes"}"#).unwrap_err();
        assert!(
            e.contains("use_prompt_format") && e.contains("\"yes\""),
            "{e}"
        );
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
            r#"{"custom_messages": [{"role": "user", "content": "x"}], "use_prompt_format": true}"#,
        )
        .unwrap_err();
        assert!(e.contains("use_prompt_format"), "{e}");
    }

    #[test]
    fn truncates_by_chars() {
        assert_eq!(truncate_chars("héllo", 2), "hé...");
        assert_eq!(truncate_chars("hé", 2), "hé");
    }
}
