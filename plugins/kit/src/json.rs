//! Typed, borrowing views of OpenAI-style response JSON.
//!
//! Every field is lenient: a value of an unexpected type is skipped instead
//! of failing the whole document, so odd servers degrade to "no event"
//! rather than an error. Strings borrow from the input unless escaped.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Visitor methods that map strings, numbers, bools and null to `$none`.
macro_rules! skip_scalars {
    ($none:expr) => {
        fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_string<E: de::Error>(self, _: String) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($none)
        }
    };
}

/// Visitor methods that map every non-string value to `$none`.
macro_rules! skip_others {
    ($none:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            drain_map(map)?;
            Ok($none)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            drain_seq(seq)?;
            Ok($none)
        }
    };
}

/// One SSE payload or a whole response body that is a JSON object.
#[derive(serde::Deserialize, Default)]
pub struct Payload<'a> {
    /// `null` deserializes to `None`; anything else is an error report.
    #[serde(default)]
    pub error: Option<Value>,
    #[serde(default, borrow)]
    pub choices: Choices<Choice<'a>>,
    /// Boxed, as the rare fields below: the view is moved a few times per
    /// event, and its size is what those moves copy.
    #[serde(default)]
    pub usage: Obj<Box<Usage>>,
    /// Embeddings responses carry their vectors here.
    #[serde(default)]
    pub data: IsArray,
    #[serde(default, borrow)]
    pub text: Text<'a>,
    #[serde(default, borrow)]
    pub output: Text<'a>,
    #[serde(default, borrow)]
    pub response: Text<'a>,
    #[serde(default, borrow)]
    pub generated_text: Text<'a>,
}

#[derive(serde::Deserialize, Default)]
pub struct Choice<'a> {
    #[serde(default, borrow)]
    pub delta: Obj<Message<'a>>,
    /// Non-streaming only, once per body.
    #[serde(default, borrow)]
    pub message: Obj<Box<Message<'a>>>,
    /// Completions API.
    #[serde(default, borrow)]
    pub text: Text<'a>,
    /// `stop`, `length`, ...: the server says the answer is complete.
    #[serde(default, borrow)]
    pub finish_reason: Text<'a>,
}

/// A streaming `delta` or a non-streaming `message`.
#[derive(serde::Deserialize, Default)]
pub struct Message<'a> {
    #[serde(default, borrow)]
    pub content: Text<'a>,
    #[serde(default, borrow)]
    pub reasoning_content: Text<'a>,
    #[serde(default, borrow)]
    pub reasoning: Text<'a>,
    /// Non-standard: some servers put usage inside the delta.
    #[serde(default)]
    pub usage: Obj<Box<Usage>>,
}

#[derive(serde::Deserialize, Default, Clone, Copy)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: Count,
    #[serde(default)]
    pub completion_tokens: Count,
    #[serde(default)]
    pub completion_tokens_details: Obj<UsageDetails>,
}

#[derive(serde::Deserialize, Default, Clone, Copy)]
pub struct UsageDetails {
    #[serde(default)]
    pub reasoning_tokens: Count,
}

/// A whole response body, whatever JSON type it is.
pub enum Body<'a> {
    Object(Box<Payload<'a>>),
    /// An array: `generated_text` of its first element, if it has one.
    Array(Option<Cow<'a, str>>),
    String(Cow<'a, str>),
    /// A number, bool or null.
    Scalar,
}

impl<'de: 'a, 'a> Deserialize<'de> for Body<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Body<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Body<'a>, A::Error> {
                Payload::deserialize(MapAccessDeserializer::new(map))
                    .map(|p| Body::Object(p.into()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Body<'a>, A::Error> {
                let first = seq.next_element::<Obj<GeneratedText<'a>>>()?;
                drain_seq(seq)?;
                Ok(Body::Array(
                    first.and_then(|o| o.0).and_then(|g| g.generated_text.0),
                ))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Body<'a>, E> {
                Ok(Body::String(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Body<'a>, E> {
                Ok(Body::String(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Body<'a>, E> {
                Ok(Body::String(Cow::Owned(v)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Body<'a>, E> {
                Ok(Body::Scalar)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Body<'a>, E> {
                Ok(Body::Scalar)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Body<'a>, E> {
                Ok(Body::Scalar)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Body<'a>, E> {
                Ok(Body::Scalar)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Body<'a>, E> {
                Ok(Body::Scalar)
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

#[derive(serde::Deserialize, Default)]
struct GeneratedText<'a> {
    #[serde(default, borrow)]
    generated_text: Text<'a>,
}

/// A string, or `None` for any other JSON type.
#[derive(Default)]
pub struct Text<'a>(pub Option<Cow<'a, str>>);

impl<'a> Text<'a> {
    /// The string when it is not empty.
    pub fn non_empty(&self) -> Option<&Cow<'a, str>> {
        self.0.as_ref().filter(|s| !s.is_empty())
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Some(Cow::Owned(v))))
            }
            skip_others!(Text(None));
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A non-negative integer, or `None` for any other JSON value.
#[derive(Default, Clone, Copy)]
pub struct Count(pub Option<u64>);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Count, E> {
                Ok(Count(Some(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Count, E> {
                Ok(Count(u64::try_from(v).ok()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Count, E> {
                // Some servers send `12.0`; accept whole numbers only.
                let whole = v >= 0.0 && v.fract() == 0.0 && v < u64::MAX as f64;
                Ok(Count(whole.then_some(v as u64)))
            }
            fn visit_borrowed_str<E: de::Error>(self, _: &'de str) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_string<E: de::Error>(self, _: String) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Count, A::Error> {
                drain_map(map)?;
                Ok(Count(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Count, A::Error> {
                drain_seq(seq)?;
                Ok(Count(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A JSON object read as `T`, or `None` for any other JSON type.
pub struct Obj<T>(pub Option<T>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Obj(None)
    }
}

impl<T: Clone> Clone for Obj<T> {
    fn clone(&self) -> Self {
        Obj(self.0.clone())
    }
}

impl<T: Copy> Copy for Obj<T> {}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(|t| Obj(Some(t)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Obj<T>, A::Error> {
                drain_seq(seq)?;
                Ok(Obj(None))
            }
            skip_scalars!(Obj(None));
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// `choices`: whether it was an array, and its first element if that is an
/// object. The other elements are skipped without being built.
pub struct Choices<T> {
    pub is_array: bool,
    pub first: Option<T>,
}

impl<T> Default for Choices<T> {
    fn default() -> Self {
        Choices {
            is_array: false,
            first: None,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Choices<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Choices<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Choices<T>, A::Error> {
                let first = seq.next_element::<Obj<T>>()?.and_then(|o| o.0);
                drain_seq(seq)?;
                Ok(Choices {
                    is_array: true,
                    first,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Choices<T>, A::Error> {
                drain_map(map)?;
                Ok(Choices::default())
            }
            skip_scalars!(Choices::default());
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// Whether the value is an array; its elements are skipped unbuilt, which
/// keeps large embedding vectors cheap.
#[derive(Default)]
pub struct IsArray(pub bool);

impl<'de> Deserialize<'de> for IsArray {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IsArray;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<IsArray, A::Error> {
                drain_seq(seq)?;
                Ok(IsArray(true))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<IsArray, A::Error> {
                drain_map(map)?;
                Ok(IsArray(false))
            }
            skip_scalars!(IsArray(false));
        }
        d.deserialize_any(V)
    }
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}
