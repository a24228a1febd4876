//! The console API's error answer: a status, a message a marketer can act on, and the field(s) at fault.

use crate::domain::ParseError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// `{"error": message, "field": first field, "errors": [{field, message}]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub errors: Vec<FieldError>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            errors: Vec::new(),
        }
    }

    /// 422: `field` is wrong; nothing was saved.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let (field, message) = (field.into(), message.into());
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: format!("{field}: {message}"),
            errors: vec![FieldError { field, message }],
        }
    }

    /// 422 with every problem found (e.g. all the content's violations at once).
    pub fn fields(errors: Vec<ParseError>) -> Self {
        let errors: Vec<FieldError> = errors
            .into_iter()
            .map(|e| FieldError {
                field: e.field,
                message: e.message,
            })
            .collect();
        let message = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            many => format!(
                "{} problems; the first: {}: {}",
                many.len(),
                many.first().map(|e| e.field.as_str()).unwrap_or(""),
                many.first().map(|e| e.message.as_str()).unwrap_or("")
            ),
        };
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message,
            errors,
        }
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("{what} {id:?} does not exist"),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 500: logged with its cause; the caller gets a plain message (causes can name internals).
    pub fn internal(e: anyhow::Error) -> Self {
        tracing::error!(error = %format!("{e:#}"), "console request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "something went wrong on our side; nothing was changed unless the answer says so",
        )
    }
}

impl From<ParseError> for ApiError {
    fn from(e: ParseError) -> Self {
        Self::fields(vec![e])
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            field: self.errors.first().map(|e| e.field.clone()),
            error: self.message,
            errors: self.errors,
        };
        (self.status, axum::Json(body)).into_response()
    }
}
