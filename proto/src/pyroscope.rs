//! Pyroscope's push API messages (`push/v1/push.proto` and `types/v1/types.proto` of
//! grafana/pyroscope), as prost messages that also read the protobuf JSON form
//! (lowerCamelCase or proto field names, `bytes` as base64, unknown fields ignored).

use base64::Engine as _;
use serde::{Deserialize, Deserializer};

/// `push.v1.PushRequest`: the body of `POST /push.v1.PusherService/Push`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct PushRequest {
    /// The series pushed, each with its raw profiles.
    #[prost(message, repeated, tag = "1")]
    #[serde(default)]
    pub series: Vec<RawProfileSeries>,
}

/// `push.v1.RawProfileSeries`: one label set and its profiles.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct RawProfileSeries {
    /// The series labels (`service_name`, `__name__`, `__delta__`, the SDK's tags).
    #[prost(message, repeated, tag = "1")]
    #[serde(default)]
    pub labels: Vec<LabelPair>,
    /// The profiles of this series.
    #[prost(message, repeated, tag = "2")]
    #[serde(default)]
    pub samples: Vec<RawSample>,
    /// Annotations (accepted, not stored).
    #[prost(message, repeated, tag = "3")]
    #[serde(default)]
    pub annotations: Vec<ProfileAnnotation>,
}

/// `push.v1.RawSample`: one pprof profile, gzipped or raw.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct RawSample {
    /// The pprof bytes (gzip or raw protobuf).
    #[prost(bytes = "vec", tag = "1")]
    #[serde(
        rename = "rawProfile",
        alias = "raw_profile",
        default,
        deserialize_with = "base64_bytes"
    )]
    pub raw_profile: Vec<u8>,
    /// A UUID the SDK gives the profile.
    #[prost(string, tag = "2")]
    #[serde(rename = "ID", default)]
    pub id: String,
}

/// `types.v1.LabelPair`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct LabelPair {
    /// Label name.
    #[prost(string, tag = "1")]
    #[serde(default)]
    pub name: String,
    /// Label value.
    #[prost(string, tag = "2")]
    #[serde(default)]
    pub value: String,
}

/// `types.v1.ProfileAnnotation`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct ProfileAnnotation {
    /// Annotation key.
    #[prost(string, tag = "1")]
    #[serde(default)]
    pub key: String,
    /// Annotation value.
    #[prost(string, tag = "2")]
    #[serde(default)]
    pub value: String,
}

/// Protobuf JSON `bytes`: standard or URL-safe base64, padded or not.
fn base64_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    let text = String::deserialize(deserializer)?;
    decode_base64(&text).map_err(serde::de::Error::custom)
}

/// Decodes base64 the way protobuf JSON allows it (standard or URL-safe alphabet, with or
/// without padding).
pub fn decode_base64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let text = text.trim();
    if text.contains(['-', '_']) {
        GeneralPurpose::new(&base64::alphabet::URL_SAFE, config).decode(text)
    } else {
        GeneralPurpose::new(&base64::alphabet::STANDARD, config).decode(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn json_and_protobuf_forms_agree() {
        let request = PushRequest {
            series: vec![RawProfileSeries {
                labels: vec![LabelPair {
                    name: "service_name".into(),
                    value: "shop".into(),
                }],
                samples: vec![RawSample {
                    raw_profile: vec![0xfb, 0xff, 1],
                    id: "abc".into(),
                }],
                annotations: vec![],
            }],
        };
        let decoded = PushRequest::decode(request.encode_to_vec().as_slice()).unwrap();
        assert_eq!(decoded, request);
        let camel: PushRequest = serde_json::from_str(
            r#"{"series":[{"labels":[{"name":"service_name","value":"shop"}],"samples":[{"rawProfile":"+/8B","ID":"abc"}],"extra":1}]}"#,
        )
        .unwrap();
        assert_eq!(camel, request);
        let snake: PushRequest = serde_json::from_str(
            r#"{"series":[{"labels":[{"name":"service_name","value":"shop"}],"samples":[{"raw_profile":"-_8B","ID":"abc"}]}]}"#,
        )
        .unwrap();
        assert_eq!(snake, request);
        assert!(
            serde_json::from_str::<PushRequest>(
                r#"{"series":[{"samples":[{"rawProfile":"%%"}]}]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn non_utf8_label_is_a_decode_error() {
        // series { labels { name: "\xff" } }
        let body = [0x0a, 0x05, 0x0a, 0x03, 0x0a, 0x01, 0xff];
        let err = PushRequest::decode(&body[..]).unwrap_err();
        assert!(err.to_string().contains("UTF-8"), "{err}");
    }
}
