//! The HTTP client notifications go out through: hyper's client over
//! rustls (the TLS stack the Kubernetes client uses), with the system's
//! root certificates, HTTP/1.1, no redirects followed, a timeout per
//! attempt. Its answers are [`Answer`]s, their words scrubbed of secrets.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::error::NotifyError;
use super::mask::scrub;
use super::retry::Answer;

/// How long one attempt may take, answer included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of an answer's body read at most (it is not kept).
const MAX_ANSWER: usize = 64 * 1024;

/// Sends notifications.
#[derive(Clone)]
pub struct Http {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// One request: where, its headers, its body, and the secrets its errors
/// must not show.
pub struct Post<'a> {
    /// The URL.
    pub url: &'a Uri,
    /// Headers beside `Content-Type: application/json`.
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body.
    pub body: Bytes,
    /// Values scrubbed from every error's words.
    pub secrets: &'a [&'a str],
}

impl Http {
    /// A client trusting the system's root certificates (none found: only
    /// plain `http://` works, which the first HTTPS attempt says).
    pub fn new() -> Result<Http, NotifyError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| NotifyError::Tls(e.to_string()))?;
        let config = match hyper_rustls::ConfigBuilderExt::with_native_roots(builder) {
            Ok(b) => b.with_no_client_auth(),
            Err(e) => {
                tracing::warn!(error = %e, "no root certificates found: notifications over https will fail");
                rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| NotifyError::Tls(e.to_string()))?
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            }
        };
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Http {
            client: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    /// POSTs `post` once: the answer's status, a timeout, or why no answer
    /// came.
    pub async fn post(&self, post: Post<'_>) -> Answer {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(post.url.clone())
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("testlayer/", env!("CARGO_PKG_VERSION")),
            );
        for (k, v) in &post.headers {
            req = req.header(*k, v.as_str());
        }
        let req = match req.body(Full::new(post.body)) {
            Ok(r) => r,
            Err(e) => return Answer::Connection(scrub(&e.to_string(), post.secrets)),
        };
        let attempt = async {
            let resp = self.client.request(req).await?;
            let code = resp.status().as_u16();
            // Read (a bounded part of) the answer so the connection ends
            // cleanly; what it says is not kept: it may echo the request.
            let mut body = resp.into_body();
            let mut read = 0usize;
            while read < MAX_ANSWER {
                match body.frame().await {
                    Some(Ok(f)) => read += f.data_ref().map_or(0, |d| d.len()),
                    _ => break,
                }
            }
            Ok::<u16, hyper_util::client::legacy::Error>(code)
        };
        match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).await {
            Err(_) => Answer::Timeout,
            Ok(Ok(code)) => Answer::Status(code),
            Ok(Err(e)) => Answer::Connection(scrub(&chain(&e), post.secrets)),
        }
    }
}

/// An error and its causes, one after the other.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut words = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        words.push_str(": ");
        words.push_str(&c.to_string());
        cause = c.source();
    }
    words
}
