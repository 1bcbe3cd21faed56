//! Parca's `WriteRawRequest` in protobuf JSON (`raw_profile` or `rawProfile`), as Parca
//! agents send it to `WriteRaw`: each series' labels (sanitized, `__name__` kept as is)
//! and its raw pprof profiles, base64-decoded. Reading and validating the profiles is the
//! ingest path's job.

use std::{fmt, marker::PhantomData};

use base64::Engine as _;
use serde::{Deserialize, Deserializer, de};
use shared::labels::{Labels, NAME_LABEL};

use crate::labels::insert_sanitized;

/// `WriteRawRequest`.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WriteRawRequest {
    /// The series pushed.
    #[serde(default, deserialize_with = "objects")]
    pub series: Vec<RawProfileSeries>,
}

/// One label set and its profiles.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RawProfileSeries {
    /// The series' labels.
    #[serde(default, deserialize_with = "object")]
    pub labels: LabelSet,
    /// Its profiles.
    #[serde(default, deserialize_with = "objects")]
    pub samples: Vec<RawSample>,
}

/// `LabelSet`.
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LabelSet {
    /// The labels.
    #[serde(default, deserialize_with = "objects")]
    pub labels: Vec<RawLabel>,
}

/// One label.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RawLabel {
    /// Its name.
    pub name: String,
    /// Its value.
    #[serde(default)]
    pub value: String,
}

/// One raw profile.
#[derive(Debug, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RawSample {
    /// A pprof profile (gzip or raw), base64.
    #[serde(rename = "rawProfile", alias = "raw_profile", default)]
    pub raw_profile: String,
}

/// A message read only from a JSON object: serde's derive would also read a struct from
/// an array of its fields (`[]` as an empty request), which protobuf JSON does not allow.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Only<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> de::Visitor<'de> for Only<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(Only(PhantomData)).map(Object)
    }
}

fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<T, D::Error> {
    Object::deserialize(deserializer).map(|o| o.0)
}

fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Vec<T>, D::Error> {
    let all = Vec::<Object<T>>::deserialize(deserializer)?;
    Ok(all.into_iter().map(|o| o.0).collect())
}

/// Why a WriteRaw body could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WriteRawError {
    /// The body is no WriteRawRequest (not JSON, not an object, a field of the wrong type).
    #[error("{0}")]
    Json(String),
    /// A profile is not base64.
    #[error("series[{series}].samples[{sample}].raw_profile: {detail}")]
    Base64 {
        series: usize,
        sample: usize,
        detail: String,
    },
}

/// Every profile of a WriteRaw JSON body with its series' labels, in order.
pub fn decode(body: &[u8]) -> Result<Vec<(Labels, Vec<u8>)>, WriteRawError> {
    let Object(request) = serde_json::from_slice::<Object<WriteRawRequest>>(body)
        .map_err(|e| WriteRawError::Json(e.to_string()))?;
    let mut profiles = Vec::new();
    for (s, series) in request.series.iter().enumerate() {
        let mut labels = Labels::new();
        for label in &series.labels.labels {
            if label.name == NAME_LABEL {
                labels.insert(NAME_LABEL, label.value.as_str());
            } else {
                insert_sanitized(&mut labels, &label.name, &label.value);
            }
        }
        for (i, sample) in series.samples.iter().enumerate() {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(sample.raw_profile.trim())
                .map_err(|e| WriteRawError::Base64 {
                    series: s,
                    sample: i,
                    detail: e.to_string(),
                })?;
            profiles.push((labels.clone(), raw));
        }
    }
    Ok(profiles)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_raw_json_accepts_both_field_spellings() {
        let camel = decode(
            br#"{"normalized":true,"series":[{"labels":{"labels":[{"name":"__name__","value":"parca_agent_cpu"},{"name":"otel.scope","value":"x"}]},"samples":[{"rawProfile":"AAE=","executableInfo":[]}]}]}"#,
        )
        .unwrap();
        assert_eq!(camel.len(), 1);
        assert_eq!(camel[0].0.get("__name__"), Some("parca_agent_cpu"));
        assert_eq!(camel[0].0.get("otel_scope"), Some("x"));
        assert_eq!(camel[0].1, vec![0, 1]);
        let snake = decode(br#"{"series":[{"samples":[{"raw_profile":"AAE="}]}]}"#).unwrap();
        assert_eq!(snake[0].1, vec![0, 1]);
    }

    #[test]
    fn bodies_that_are_not_requests_are_errors() {
        // Arrays are no messages, at any depth (serde's derive alone would take them).
        for body in [
            &b"[]"[..],
            b" [[]]",
            b"null",
            b"\"x\"",
            b"",
            b"{not json",
            br#"{"series": [[], []]}"#,
            br#"{"series": [{"labels": []}]}"#,
            br#"{"series": [{"labels": {"labels": [["n", "v"]]}}]}"#,
            br#"{"series": [{"samples": [[]]}]}"#,
        ] {
            assert!(
                matches!(decode(body), Err(WriteRawError::Json(_))),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let bad = decode(br#"{"series":[{"samples":[{},{"rawProfile":"@@"}]}]}"#);
        assert!(
            matches!(
                bad,
                Err(WriteRawError::Base64 {
                    series: 0,
                    sample: 1,
                    ..
                })
            ),
            "{bad:?}"
        );
    }
}
