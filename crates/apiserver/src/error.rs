//! The one place where failures become HTTP responses.
//!
//! Kubernetes clients (kubectl above all) decide what to do from the `Status` object in the
//! body: its `reason` (NotFound, AlreadyExists, Conflict, Invalid, ...), `code`, and
//! `details.causes[].field`. Every error path of the API server goes through [`ApiError`], so
//! the mapping below is the only place those shapes are written.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use wisp_api::validation::FieldErrors;
use wisp_store::StoreError;

/// What went wrong while serving a request, with what the client needs to act on it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    AlreadyExists {
        message: String,
        kind: String,
        name: String,
    },
    #[error("{message}")]
    Conflict {
        message: String,
        kind: String,
        name: String,
    },
    /// Validation failed: HTTP 422 with every broken field.
    #[error("{kind} \"{name}\" is invalid: {errors}")]
    Invalid {
        kind: String,
        group: String,
        name: String,
        errors: FieldErrors,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotAcceptable(String),
    /// A watch started from a resourceVersion older than the retained history.
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            ApiError::AlreadyExists { .. } => (StatusCode::CONFLICT, "AlreadyExists"),
            ApiError::Conflict { .. } => (StatusCode::CONFLICT, "Conflict"),
            ApiError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType")
            }
            ApiError::NotAcceptable(_) => (StatusCode::NOT_ACCEPTABLE, "NotAcceptable"),
            ApiError::Gone(_) => (StatusCode::GONE, "Expired"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
        }
    }

    pub fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    /// The `meta.k8s.io/v1` `Status` object for this error.
    pub fn to_status(&self) -> Value {
        let (code, reason) = self.parts();
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": reason,
            "code": code.as_u16(),
        });
        let details = match self {
            ApiError::AlreadyExists { kind, name, .. } | ApiError::Conflict { kind, name, .. } => {
                Some(json!({ "name": name, "kind": kind }))
            }
            ApiError::Invalid {
                kind,
                group,
                name,
                errors,
            } => Some(json!({
                "name": name,
                "group": group,
                "kind": kind,
                "causes": errors.0.iter().map(|e| json!({
                    "reason": e.reason.as_str(),
                    "message": e.cause_message(),
                    "field": e.path,
                })).collect::<Vec<_>>(),
            })),
            _ => None,
        };
        if let Some(details) = details {
            status["details"] = details;
        }
        status
    }

    /// Maps a store failure for `kind`/`name` of resource `resource`.
    pub fn from_store(err: StoreError, resource: &str, name: &str) -> ApiError {
        match err {
            StoreError::NotFound { .. } => {
                ApiError::NotFound(format!("{resource} \"{name}\" not found"))
            }
            StoreError::AlreadyExists { .. } => ApiError::AlreadyExists {
                message: format!("{resource} \"{name}\" already exists"),
                kind: resource.to_string(),
                name: name.to_string(),
            },
            e @ StoreError::Conflict { .. } => ApiError::Conflict {
                message: e.to_string(),
                kind: resource.to_string(),
                name: name.to_string(),
            },
            e @ StoreError::Expired { .. } => ApiError::Gone(e.to_string()),
            StoreError::Invalid(m) => ApiError::BadRequest(m),
            e @ StoreError::Backend(_) => ApiError::Internal(e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(msg) = &self {
            tracing::error!(error = %msg, "internal error");
        }
        (self.status_code(), axum::Json(self.to_status())).into_response()
    }
}
