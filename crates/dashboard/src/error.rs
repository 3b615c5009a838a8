//! Failures of a request, rendered as an error page with their status code.

use askama::Template;
use axum::{
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};

/// A failure shown as a page (or a fragment) with its status code.
#[derive(Debug, thiserror::Error)]
pub enum PageError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Node(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl PageError {
    const fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Node(_) => StatusCode::BAD_GATEWAY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    const fn heading(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "That request is not valid",
            Self::NotFound(_) => "Not found",
            Self::Forbidden(_) => "Refused",
            Self::Node(_) => "The node cannot be reached",
            Self::Unavailable(_) => "Busy",
            Self::Internal(_) => "Something went wrong",
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    heading: &'a str,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        tracing::debug!(error = %self, "dashboard request failed");
        let page = ErrorPage { heading: self.heading(), message: self.to_string() };
        let body = page.render().unwrap_or_else(|_| self.to_string());
        (self.status(), Html(body)).into_response()
    }
}
