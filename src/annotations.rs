//! Per-function settings carried by config.json annotations under `com.runlambda.`.
//!
//! Kubernetes pod annotations reach a bundle through containerd's `pod_annotations`, so this is
//! how a function's memory, `/tmp` size and timeout travel. Every key under the prefix must be a
//! known one: a typo such as `memroy-mb` would otherwise fall back to a default without a word.
//! The known keys are one table, `KNOWN`; a new setting is one more row there and one more
//! field in [`FunctionSettings`]. The numeric ranges live here too, as [`Bounds`], so the runtime
//! config (`config.rs`) validates its defaults against exactly the same limits.

use std::collections::BTreeMap;
use std::fmt;
use std::num::ParseIntError;

/// The prefix that marks an annotation as ours.
pub const PREFIX: &str = "com.runlambda.";

/// Function memory in MiB (Lambda's range).
pub const MEMORY_MB: Bounds = Bounds::new(128, 10_240, "MB");
/// Size of the `/tmp` tmpfs in MiB (Lambda's ephemeral storage range).
pub const EPHEMERAL_STORAGE_MB: Bounds = Bounds::new(512, 10_240, "MB");
/// Invocation timeout in seconds (Lambda's range).
pub const TIMEOUT_S: Bounds = Bounds::new(1, 900, "s");

/// Per-function settings read from `com.runlambda.*` annotations. A field is `Some` only when
/// the bundle carried that annotation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionSettings {
    pub memory_mb: Option<u32>,
    pub ephemeral_storage_mb: Option<u32>,
    pub timeout_s: Option<u32>,
    pub mode: Option<Mode>,
    pub function_name: Option<String>,
    pub handler: Option<String>,
    pub idle_timeout_s: Option<u32>,
    pub invoke_port: Option<u16>,
    pub freeze_delay_ms: Option<u32>,
}

/// What a container is: a plain one (runc's model) or a Lambda execution environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Lambda,
}

/// How long an idle Lambda environment lives, in seconds.
pub const IDLE_TIMEOUT_S: Bounds = Bounds::new(1, 86_400, "s");
/// How long the freeze waits after an invocation, in milliseconds.
pub const FREEZE_DELAY_MS: Bounds = Bounds::new(0, 60_000, "ms");
/// A TCP port.
pub const PORT: Bounds = Bounds::new(1, 65_535, "port");

/// An inclusive range of accepted values and the unit they are counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
    pub unit: &'static str,
}

impl Bounds {
    const fn new(min: u32, max: u32, unit: &'static str) -> Self {
        Self { min, max, unit }
    }

    /// Whether `value` lies in the range.
    pub fn contains(&self, value: u32) -> bool {
        (self.min..=self.max).contains(&value)
    }
}

impl fmt::Display for Bounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..={} ({})", self.min, self.max, self.unit)
    }
}

/// Why the `com.runlambda.*` annotations of a bundle were refused.
#[derive(Debug, thiserror::Error)]
pub enum AnnotationError {
    #[error("unknown annotation {key} (known: {})", known_keys())]
    Unknown { key: String },
    #[error("annotation {key}: {value:?} is out of range {bounds}")]
    OutOfRange {
        key: String,
        value: String,
        bounds: Bounds,
    },
    #[error("annotation {key}: {value:?} is not one of {}", allowed.join(", "))]
    NotOneOf {
        key: String,
        value: String,
        allowed: &'static [&'static str],
    },
    #[error("annotation {key}: {value:?} must be {rule}")]
    Pattern {
        key: String,
        value: String,
        rule: &'static str,
    },
    #[error("annotation {key}: {value:?} is not a whole number in {bounds}")]
    NotANumber {
        key: String,
        value: String,
        bounds: Bounds,
        #[source]
        source: ParseIntError,
    },
}

/// Why one value was refused; [`parse`] adds the key and the value.
pub enum Refusal {
    OutOfRange(Bounds),
    NotANumber(Bounds, ParseIntError),
    OneOf(&'static [&'static str]),
    Pattern(&'static str),
}

/// One known annotation: its name after [`PREFIX`] and how its value lands in the settings.
struct Known {
    name: &'static str,
    apply: fn(&mut FunctionSettings, &str) -> Result<(), Refusal>,
}

/// Every annotation runlambda reads. Add a row (and a field) for a new setting.
const KNOWN: &[Known] = &[
    Known {
        name: "memory-mb",
        apply: |s, v| number(v, MEMORY_MB).map(|n| s.memory_mb = Some(n)),
    },
    Known {
        name: "ephemeral-storage-mb",
        apply: |s, v| number(v, EPHEMERAL_STORAGE_MB).map(|n| s.ephemeral_storage_mb = Some(n)),
    },
    Known {
        name: "timeout-s",
        apply: |s, v| number(v, TIMEOUT_S).map(|n| s.timeout_s = Some(n)),
    },
    Known {
        name: "mode",
        apply: |s, v| {
            s.mode = Some(match v {
                "lambda" => Mode::Lambda,
                "plain" => Mode::Plain,
                _ => return Err(Refusal::OneOf(&["lambda", "plain"])),
            });
            Ok(())
        },
    },
    Known {
        name: "function-name",
        apply: |s, v| function_name(v).map(|n| s.function_name = Some(n)),
    },
    Known {
        name: "handler",
        apply: |s, v| {
            s.handler = Some(v.to_owned());
            Ok(())
        },
    },
    Known {
        name: "idle-timeout-s",
        apply: |s, v| number(v, IDLE_TIMEOUT_S).map(|n| s.idle_timeout_s = Some(n)),
    },
    Known {
        name: "invoke-port",
        apply: |s, v| number(v, PORT).map(|n| s.invoke_port = Some(n as u16)),
    },
    Known {
        name: "freeze-delay-ms",
        apply: |s, v| number(v, FREEZE_DELAY_MS).map(|n| s.freeze_delay_ms = Some(n)),
    },
];

/// Lambda's rule for function names: 1–64 of letters, digits, `-` and `_`.
pub fn function_name(value: &str) -> Result<String, Refusal> {
    let valid = (1..=64).contains(&value.len())
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(value.to_owned())
    } else {
        Err(Refusal::Pattern("1 to 64 letters, digits, '-' or '_'"))
    }
}

/// Reads the `com.runlambda.*` annotations; other annotations are not ours and are left alone.
pub fn parse(annotations: &BTreeMap<String, String>) -> Result<FunctionSettings, AnnotationError> {
    let mut settings = FunctionSettings::default();
    for (key, value) in annotations {
        let Some(name) = key.strip_prefix(PREFIX) else {
            continue;
        };
        let known = KNOWN
            .iter()
            .find(|known| known.name == name)
            .ok_or_else(|| AnnotationError::Unknown { key: key.clone() })?;
        (known.apply)(&mut settings, value).map_err(|refusal| {
            let (key, value) = (key.clone(), value.clone());
            match refusal {
                Refusal::OutOfRange(bounds) => AnnotationError::OutOfRange { key, value, bounds },
                Refusal::NotANumber(bounds, source) => AnnotationError::NotANumber {
                    key,
                    value,
                    bounds,
                    source,
                },
                Refusal::OneOf(allowed) => AnnotationError::NotOneOf {
                    key,
                    value,
                    allowed,
                },
                Refusal::Pattern(rule) => AnnotationError::Pattern { key, value, rule },
            }
        })?;
    }
    Ok(settings)
}

/// A whole number within `bounds`.
fn number(value: &str, bounds: Bounds) -> Result<u32, Refusal> {
    let parsed: u32 = value
        .parse()
        .map_err(|source| Refusal::NotANumber(bounds, source))?;
    if bounds.contains(parsed) {
        Ok(parsed)
    } else {
        Err(Refusal::OutOfRange(bounds))
    }
}

fn known_keys() -> String {
    let keys: Vec<String> = KNOWN
        .iter()
        .map(|k| format!("{PREFIX}{}", k.name))
        .collect();
    keys.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_one(key: &str, value: &str) -> Result<FunctionSettings, AnnotationError> {
        parse(&BTreeMap::from([(key.to_owned(), value.to_owned())]))
    }

    #[test]
    fn reads_every_setting() {
        let annotations = BTreeMap::from([
            ("com.runlambda.memory-mb".to_owned(), "1769".to_owned()),
            (
                "com.runlambda.ephemeral-storage-mb".to_owned(),
                "10240".to_owned(),
            ),
            ("com.runlambda.timeout-s".to_owned(), "900".to_owned()),
            (
                "io.kubernetes.cri.container-type".to_owned(),
                "container".to_owned(),
            ),
        ]);
        let settings = parse(&annotations).unwrap();
        assert_eq!(
            settings,
            FunctionSettings {
                memory_mb: Some(1769),
                ephemeral_storage_mb: Some(10240),
                timeout_s: Some(900),
                ..FunctionSettings::default()
            }
        );
    }

    #[test]
    fn absent_settings_stay_unset() {
        assert_eq!(
            parse(&BTreeMap::new()).unwrap(),
            FunctionSettings::default()
        );
    }

    #[test]
    fn range_ends_are_accepted() {
        for (key, value) in [
            ("com.runlambda.memory-mb", "128"),
            ("com.runlambda.memory-mb", "10240"),
            ("com.runlambda.ephemeral-storage-mb", "512"),
            ("com.runlambda.timeout-s", "1"),
        ] {
            parse_one(key, value).unwrap_or_else(|e| panic!("{key}={value}: {e}"));
        }
    }

    #[test]
    fn out_of_range_names_annotation_value_and_range() {
        let cases = [
            ("com.runlambda.memory-mb", "64", "128..=10240 (MB)"),
            ("com.runlambda.memory-mb", "10241", "128..=10240 (MB)"),
            (
                "com.runlambda.ephemeral-storage-mb",
                "511",
                "512..=10240 (MB)",
            ),
            (
                "com.runlambda.ephemeral-storage-mb",
                "20000",
                "512..=10240 (MB)",
            ),
            ("com.runlambda.timeout-s", "0", "1..=900 (s)"),
            ("com.runlambda.timeout-s", "901", "1..=900 (s)"),
        ];
        for (key, value, range) in cases {
            let err = parse_one(key, value).unwrap_err();
            assert!(matches!(err, AnnotationError::OutOfRange { .. }), "{err:?}");
            assert_eq!(
                err.to_string(),
                format!("annotation {key}: \"{value}\" is out of range {range}")
            );
        }
    }

    #[test]
    fn unparsable_names_annotation_value_and_range() {
        for key in [
            "com.runlambda.memory-mb",
            "com.runlambda.ephemeral-storage-mb",
            "com.runlambda.timeout-s",
        ] {
            for value in ["", "abc", "1.5", "-1", "128MB", "99999999999"] {
                let err = parse_one(key, value).unwrap_err();
                assert!(matches!(err, AnnotationError::NotANumber { .. }), "{err:?}");
                let message = err.to_string();
                assert!(message.starts_with(&format!("annotation {key}: {value:?} is not")));
                assert!(message.contains(".."), "{message}");
            }
        }
    }

    #[test]
    fn unknown_key_under_prefix_is_named() {
        let err = parse_one("com.runlambda.memroy-mb", "256").unwrap_err();
        assert!(
            matches!(err, AnnotationError::Unknown { ref key } if key == "com.runlambda.memroy-mb")
        );
        assert!(err
            .to_string()
            .starts_with("unknown annotation com.runlambda.memroy-mb (known: "));
        assert!(err.to_string().contains("com.runlambda.memory-mb"));
    }

    #[test]
    fn other_prefixes_are_not_ours() {
        assert_eq!(
            parse_one("com.runlambdax.memory-mb", "1").unwrap(),
            FunctionSettings::default()
        );
        assert_eq!(
            parse_one("com.example/memory-mb", "1").unwrap(),
            FunctionSettings::default()
        );
    }
}
