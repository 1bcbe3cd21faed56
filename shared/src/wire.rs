//! JSON bodies both the server writes and the UI reads, defined once so the two cannot
//! drift: the `query_range` answer and the error body of every endpoint.

use serde::{Deserialize, Serialize};

use crate::labels::Labels;

/// The answer of `query_range`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RangeResponse {
    pub series: Vec<RangeSeries>,
}

/// One line of the metrics graph.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RangeSeries {
    #[cfg_attr(feature = "openapi", schema(value_type = std::collections::BTreeMap<String, String>))]
    pub labels: Labels,
    pub points: Vec<RangePoint>,
}

/// A point: `t` in unix ms. For snapshot types `t` is exactly a profile's timestamp.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RangePoint {
    pub t: i64,
    pub value: i64,
    /// For delta types: value per second of profiled time (for `samples:count` types the
    /// samples are first scaled by the period, so CPU reads as cores). Null for snapshots.
    pub value_per_second: Option<f64>,
}

/// The JSON body of every error answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// A short, stable description of the kind of failure.
    pub error: String,
    /// What exactly was wrong.
    pub detail: String,
    /// The request parameter or form field at fault, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_answers_round_trip_with_null_rates() {
        let text = r#"{"series":[{"labels":{"job":"api"},"points":[{"t":5,"value":7,"value_per_second":null},{"t":6,"value":1,"value_per_second":0.5}]}]}"#;
        let answer: RangeResponse = serde_json::from_str(text).unwrap();
        assert_eq!(answer.series[0].labels.get("job"), Some("api"));
        assert_eq!(answer.series[0].points[1].value_per_second, Some(0.5));
        assert_eq!(serde_json::to_string(&answer).unwrap(), text);
    }

    #[test]
    fn error_bodies_leave_out_a_missing_field() {
        let body = ErrorBody {
            error: "bad".into(),
            detail: "why".into(),
            field: None,
        };
        let text = serde_json::to_string(&body).unwrap();
        assert_eq!(text, r#"{"error":"bad","detail":"why"}"#);
        assert_eq!(serde_json::from_str::<ErrorBody>(&text).unwrap(), body);
    }
}
