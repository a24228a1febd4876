//! LINE's error responses: `{"message": "...", "details": [{"message", "property"}]}` (details omitted when empty)
//! and the fixed messages LINE uses for rate limits, quota, retry keys and authentication.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use line_spec::Violation;
use serde_json::json;

pub(crate) const RATE_LIMITED: &str = "The API rate limit has been exceeded. Try again later.";
pub(crate) const MONTHLY_LIMIT: &str = "You have reached your monthly limit.";
pub(crate) const RETRY_KEY_ACCEPTED: &str = "The retry key is already accepted";
pub(crate) const RETRY_KEY_INVALID: &str = "The value for the 'X-Line-Retry-Key' header is invalid";
pub(crate) const RETRY_KEY_UNSUPPORTED: &str =
    "The 'X-Line-Retry-Key' header is not supported by this endpoint";
pub(crate) const INTERNAL_ERROR: &str = "An internal server error occurred";
pub(crate) const BODY_TOO_LARGE: &str = "The request body is too large";
pub(crate) const MALFORMED_JSON: &str = "The request body could not be parsed as JSON";
pub(crate) const FAILED_TO_SEND: &str = "Failed to send messages";

/// `{"message": message}` with `status`.
pub(crate) fn line_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "message": message }))).into_response()
}

/// 400 `{"message":"The request body has N error(s)","details":[...]}`.
pub(crate) fn validation_error(violations: &[Violation]) -> Response {
    let details: Vec<_> = violations
        .iter()
        .map(|v| {
            if v.property.is_empty() {
                json!({ "message": v.message })
            } else {
                json!({ "message": v.message, "property": v.property })
            }
        })
        .collect();
    let body = json!({
        "message": format!("The request body has {} error(s)", violations.len()),
        "details": details,
    });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}
