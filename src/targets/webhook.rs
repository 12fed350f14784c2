//! Targets: a generic webhook, a templated JSON request to a configured URL (chat and
//! messenger notifications, custom APIs).

use std::collections::BTreeMap;

use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::Value;

use super::{Built, Target, TargetError};
use crate::auth::AuthConfig;
use crate::http::{Answer, Body, HeaderValue, Request, Verdict, excerpt};
use crate::template::{RenderContext, StringTemplate, Templates, ValueTemplate};

/// `target: { webhook: {...} }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The URL (from configuration only).
    pub url: String,
    /// HTTP method; default `POST`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Extra headers; values are templates. Do not put credentials here: use `auth`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body template tree; default: the normalized event.
    pub body: Option<Value>,
    /// Statuses that mean success; default any 2xx.
    pub success_status: Option<Vec<u16>>,
    /// How to authenticate: `none` (default), `basic`, `bearer`, `oauth2` (with `token_url`).
    #[serde(default = "no_auth")]
    pub auth: AuthConfig,
    /// Requests per second and in flight to it, per warm container; default unlimited.
    pub rate_limit: Option<super::RateLimitConfig>,
}

fn default_method() -> String {
    "POST".to_owned()
}

fn no_auth() -> AuthConfig {
    AuthConfig::None
}

/// A configured webhook.
#[derive(Debug)]
pub(super) struct Webhook {
    url: Url,
    method: Method,
    headers: Vec<(String, StringTemplate)>,
    body: Option<ValueTemplate>,
    success_status: Option<Vec<u16>>,
}

impl Webhook {
    /// Compiles the configuration (the URL was checked with the shared facts); `name`
    /// prefixes template names in errors.
    pub(super) fn new(
        config: &WebhookConfig,
        name: &str,
        templates: &mut Templates,
    ) -> Result<Self, TargetError> {
        let url = Url::parse(&config.url).map_err(|e| TargetError::Url {
            field: format!("{name}.url"),
            url: config.url.clone(),
            reason: e.to_string(),
        })?;
        let method = super::method(name, &config.method)?;
        let headers = config
            .headers
            .iter()
            .map(|(header, value)| {
                if reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err() {
                    return Err(TargetError::Invalid {
                        field: format!("{name}.headers.{header}"),
                        reason: "is not a valid HTTP header name (letters, digits and \
                                 !#$%&'*+-.^_`|~ only; no spaces)"
                            .to_owned(),
                    });
                }
                if header.eq_ignore_ascii_case("authorization") {
                    return Err(TargetError::Invalid {
                        field: format!("{name}.headers.{header}"),
                        reason: "put credentials in `auth` (read from a secret), not in headers"
                            .to_owned(),
                    });
                }
                if !value.contains("{{")
                    && !value.contains("{%")
                    && reqwest::header::HeaderValue::from_str(value).is_err()
                {
                    return Err(TargetError::Invalid {
                        field: format!("{name}.headers.{header}"),
                        reason: "is not a valid HTTP header value (no line breaks or control \
                                 characters)"
                            .to_owned(),
                    });
                }
                let template = templates.add_string(&format!("{name}.headers.{header}"), value)?;
                Ok((header.to_ascii_lowercase(), template))
            })
            .collect::<Result<_, TargetError>>()?;
        if let Some(codes) = &config.success_status
            && (codes.is_empty() || codes.iter().any(|code| !(100..=599).contains(code)))
        {
            return Err(TargetError::Invalid {
                field: format!("{name}.success_status"),
                reason: "must list HTTP status codes (100-599)".to_owned(),
            });
        }
        let body = config
            .body
            .as_ref()
            .map(|body| templates.add_value(&format!("{name}.body"), body))
            .transpose()?;
        if let AuthConfig::Oauth2(oauth2) = &config.auth
            && oauth2.token_url.is_none()
        {
            return Err(TargetError::Invalid {
                field: format!("{name}.auth.oauth2.token_url"),
                reason: "a webhook needs the token endpoint's URL".to_owned(),
            });
        }
        Ok(Webhook {
            url,
            method,
            headers,
            body,
            success_status: config.success_status.clone(),
        })
    }
}

impl Target for Webhook {
    fn describe(&self) -> String {
        let port = self
            .url
            .port()
            .map(|port| format!(":{port}"))
            .unwrap_or_default();
        format!(
            "webhook {} {}://{}{port}{}",
            self.method,
            self.url.scheme(),
            self.url.host_str().unwrap_or_default(),
            self.url.path()
        )
    }

    fn build(&self, render: &RenderContext<'_>, url: &Url) -> Result<Built, TargetError> {
        let body = render.value_or_event(self.body.as_ref())?;
        let mut request = Request::new(self.method.clone(), url.clone());
        for (name, value) in &self.headers {
            request.set_header(name, HeaderValue::Plain(render.string(value)?));
        }
        request.body = Body::Json(body);
        Ok(Built::plain(request))
    }

    fn interpret(&self, answer: &Answer) -> Verdict {
        let status = answer.status;
        match &self.success_status {
            Some(codes) if codes.contains(&status.as_u16()) => Verdict::Delivered {
                detail: format!("HTTP {}", status.as_u16()),
                remote_id: None,
            },
            Some(_) if status.is_success() => Verdict::Permanent {
                reason: format!(
                    "HTTP {} is not in success_status: {}",
                    status.as_u16(),
                    excerpt(&answer.body, 300)
                ),
            },
            _ => Verdict::from_answer(answer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ObjectEvent, Source};
    use crate::targets::{Endpoint, TargetConfig};
    use reqwest::StatusCode;

    fn webhook(yaml: &str) -> Result<(Endpoint, Templates), TargetError> {
        let config: WebhookConfig = serde_saphyr::from_str(yaml).unwrap();
        let mut templates = Templates::new();
        TargetConfig::Webhook(config)
            .build("routes[0].targets[0]", &mut templates)
            .map(|w| (w, templates))
    }

    #[test]
    fn renders_body_and_headers() {
        let (hook, templates) = webhook(
            "url: https://chat.example.com/hooks/x?k=1\nheaders: { X-Object: '{{ key }}' }\nbody: { text: 'New file {{ key }} ({{ size }} bytes)' }\n",
        )
        .unwrap();
        let event = ObjectEvent {
            source: Source::EventBridge,
            size: Some(10),
            ..ObjectEvent::put("b", "k.csv")
        };
        let built = hook
            .check(&RenderContext::new(&templates, &event, "r"))
            .unwrap();
        assert_eq!(
            built.request.url.as_str(),
            "https://chat.example.com/hooks/x?k=1"
        );
        let printable = built.request.printable();
        assert_eq!(printable.headers["x-object"], "k.csv");
        assert_eq!(printable.headers["content-type"], "application/json");
        assert_eq!(
            printable.body.unwrap(),
            serde_json::json!({"text": "New file k.csv (10 bytes)"})
        );
    }

    #[test]
    fn success_status_overrides_2xx() {
        let (hook, _) = webhook("url: http://h/x\nsuccess_status: [202]\n").unwrap();
        let interpret = |status| hook.target.interpret(&Answer::new(status, ""));
        assert!(matches!(
            interpret(StatusCode::ACCEPTED),
            Verdict::Delivered { .. }
        ));
        assert!(matches!(
            interpret(StatusCode::OK),
            Verdict::Permanent { .. }
        ));
        assert!(matches!(
            interpret(StatusCode::BAD_GATEWAY),
            Verdict::Retry { .. }
        ));
    }

    #[test]
    fn credentials_in_headers_or_url_are_refused() {
        let err =
            webhook("url: http://h/x\nheaders: { Authorization: 'Bearer abc' }\n").unwrap_err();
        assert!(err.to_string().contains("auth"), "{err}");
        assert!(webhook("url: http://u:p@h/x\n").is_err());
    }
}
