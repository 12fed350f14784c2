//! What flows from target/ through auth/ to delivery: one HTTP request as plain data, whose
//! secret-bearing headers know how to print themselves redacted.

use std::collections::BTreeMap;
use std::fmt;

use reqwest::{Method, Url};
use serde::Serialize;
use serde_json::Value;

use crate::secrets::SecretString;

/// A header value that may carry a secret.
#[derive(Clone)]
pub enum HeaderValue {
    /// Safe to print.
    Plain(String),
    /// Sent as `value`, printed as `shown` (e.g. `Bearer ****`).
    Secret {
        /// What goes on the wire.
        value: SecretString,
        /// What dry-runs and logs show instead.
        shown: String,
    },
}

impl HeaderValue {
    /// The printable form.
    pub fn shown(&self) -> &str {
        match self {
            HeaderValue::Plain(text) => text,
            HeaderValue::Secret { shown, .. } => shown,
        }
    }
}

impl fmt::Debug for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.shown())
    }
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    /// No body.
    Empty,
    /// `application/json`.
    Json(Value),
}

/// One HTTP request, built by a target and signed by an auth scheme.
#[derive(Debug, Clone)]
pub struct Request {
    /// HTTP method.
    pub method: Method,
    /// Full URL, from configuration only (never from event data, except percent-encoded path
    /// segments a target chose to template).
    pub url: Url,
    /// How to print the URL when it carries secrets (OAuth 1.0a query signing); `None` = as is.
    pub url_shown: Option<String>,
    /// Headers in order; names lower-case.
    pub headers: Vec<(String, HeaderValue)>,
    /// The body.
    pub body: Body,
}

impl Request {
    /// A request with no headers and no body.
    pub fn new(method: Method, url: Url) -> Self {
        Request {
            method,
            url,
            url_shown: None,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    /// Sets (replacing) a header.
    pub fn set_header(&mut self, name: &str, value: HeaderValue) {
        let name = name.to_ascii_lowercase();
        self.headers.retain(|(existing, _)| *existing != name);
        self.headers.push((name, value));
    }

    /// The request as dry-runs print it: secrets redacted.
    pub fn printable(&self) -> Printable {
        Printable {
            method: self.method.to_string(),
            url: self
                .url_shown
                .clone()
                .unwrap_or_else(|| self.url.to_string()),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), value.shown().to_owned()))
                .chain(match self.body {
                    Body::Json(_) => {
                        Some(("content-type".to_owned(), "application/json".to_owned()))
                    }
                    Body::Empty => None,
                })
                .collect(),
            body: match &self.body {
                Body::Empty => None,
                Body::Json(value) => Some(value.clone()),
            },
        }
    }
}

/// A request with secrets redacted, for dry-runs and reports.
#[derive(Debug, Clone, Serialize)]
pub struct Printable {
    /// HTTP method.
    pub method: String,
    /// Full URL.
    pub url: String,
    /// Headers as sent (content-type included), secret values redacted.
    pub headers: BTreeMap<String, String>,
    /// JSON body, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}
