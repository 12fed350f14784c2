//! Auth: Google tokens from the metadata server, for code running on Google Cloud (Cloud Run,
//! GCE, GKE with Workload Identity): the service account attached to the service signs, and no
//! key is stored anywhere. Access tokens from `.../service-accounts/default/token?scopes=...`,
//! ID tokens from `.../service-accounts/default/identity?audience=...`, each asked with
//! `Metadata-Flavor: Google`; the host is `GCE_METADATA_HOST` when set, as Google's own
//! libraries allow. See <https://cloud.google.com/compute/docs/metadata/querying-metadata>.

use reqwest::{Method, Url};

use super::token::{self, Token, Wanted};
use super::{AuthError, SignContext};
use crate::http::{HeaderValue, Request, Sent, Verdict};
use crate::secrets::SecretString;

/// The metadata server's host on Google Cloud.
const DEFAULT_HOST: &str = "metadata.google.internal";

/// The variable naming another host (`host[:port]`), as Google's client libraries read it.
pub const ENV_HOST: &str = "GCE_METADATA_HOST";

/// Where `wanted` is asked for.
pub(super) fn url(wanted: &Wanted) -> Url {
    let host = std::env::var(ENV_HOST)
        .ok()
        .map(|host| host.trim().to_owned())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| DEFAULT_HOST.to_owned());
    let base = format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/");
    let mut url = Url::parse(&base)
        .unwrap_or_else(|_| Url::parse(&format!("http://{DEFAULT_HOST}/")).expect("valid URL"));
    match wanted {
        Wanted::Access(scopes) => {
            url = url.join("token").expect("a relative path joins");
            url.query_pairs_mut()
                .append_pair("scopes", &scopes.join(","));
        }
        Wanted::Id(audience) => {
            url = url.join("identity").expect("a relative path joins");
            url.query_pairs_mut()
                .append_pair("audience", audience)
                .append_pair("format", "full");
        }
    }
    url
}

/// Asks the metadata server for the token.
pub(super) async fn mint(cx: &SignContext<'_>, wanted: &Wanted) -> Result<Token, AuthError> {
    let mut request = Request::new(Method::GET, url(wanted));
    request.set_header("metadata-flavor", HeaderValue::Plain("Google".to_owned()));
    let shown = request.url.to_string();
    let answer = match cx.transport.send(&request, cx.timeout).await {
        Sent::Answered(answer) => answer,
        Sent::Failed(error) => {
            return Err(AuthError::TokenUnavailable {
                url: shown,
                message: format!(
                    "{error} (is this running on Google Cloud? elsewhere, keep a key or a \
                     Workload Identity Federation config in a secret instead)"
                ),
            });
        }
        Sent::Printed(_) => {
            return Err(AuthError::TokenUnavailable {
                url: shown,
                message: "not sent (dry run)".to_owned(),
            });
        }
    };
    if !answer.status.is_success() {
        let message = format!(
            "the metadata server answered {}: {}",
            answer.status.as_u16(),
            match answer.status.as_u16() {
                404 => "no service account is attached to this service".to_owned(),
                _ => Verdict::from_answer(&answer).into_reason(),
            }
        );
        return Err(match answer.status.is_server_error() {
            true => AuthError::TokenUnavailable {
                url: shown,
                message,
            },
            false => AuthError::TokenRefused {
                url: shown,
                message,
            },
        });
    }
    match wanted {
        Wanted::Access(_) => {
            let body = serde_json::from_str(&answer.body).map_err(|e| AuthError::TokenRefused {
                url: shown,
                message: format!("answer is not JSON: {e}"),
            })?;
            token::from_answer(&body, wanted, &request.url, cx.clock.now())
        }
        // The identity endpoint answers with the token itself.
        Wanted::Id(_) => {
            let jwt = answer.body.trim();
            if jwt.split('.').count() != 3 {
                return Err(AuthError::TokenRefused {
                    url: shown,
                    message: "the identity endpoint's answer is not a JWT".to_owned(),
                });
            }
            Ok(Token {
                expires_at: token::jwt_expiry(jwt),
                value: SecretString::new(jwt),
            })
        }
    }
}
