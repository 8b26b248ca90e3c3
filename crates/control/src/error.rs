//! API errors: a status and a JSON body `{"code", "message", "field"}` that says what to fix.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tollgate_model::FieldError;
use tollgate_store::StoreError;

/// An error answer.
#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    /// Machine-readable kind.
    pub code: &'static str,
    /// What is wrong, in words.
    pub message: String,
    /// The field at fault, as a JSON path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every problem found, when there are several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldErrorBody>,
}

/// One entry of `errors`.
#[derive(Debug, Serialize)]
pub struct FieldErrorBody {
    field: String,
    message: String,
}

impl ApiError {
    /// Any status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            errors: Vec::new(),
        }
    }

    /// 400 for one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field.into()),
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid", message)
        }
    }

    /// 400 listing every problem; the first is also in `field`/`message`.
    pub fn fields(errs: Vec<FieldError>) -> ApiError {
        let first = errs.first().cloned().unwrap_or(FieldError {
            field: String::new(),
            message: "invalid".into(),
        });
        ApiError {
            errors: errs
                .into_iter()
                .map(|e| FieldErrorBody {
                    field: e.field,
                    message: e.message,
                })
                .collect(),
            ..ApiError::invalid(first.field, first.message)
        }
    }

    /// 404.
    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// 401.
    pub fn unauthorized(message: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 500 (the detail goes to the server's log, not to the client).
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        eprintln!("tollgate control: internal error: {detail}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the control plane's log",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound => ApiError::not_found("resource"),
            StoreError::NoOriginGroup => ApiError::not_found("origin group"),
            StoreError::Conflict { field, message } => ApiError {
                field: Some(field),
                ..ApiError::new(StatusCode::BAD_REQUEST, "conflict", message)
            },
            StoreError::Backend(m) => ApiError::internal(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(&self)).into_response()
    }
}
