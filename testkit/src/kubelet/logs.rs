//! The kubelet's read-only HTTPS endpoint for container logs, which the
//! apiserver proxies `pods/log` requests to
//! (`/containerLogs/{namespace}/{pod}/{container}?tailLines=N&limitBytes=N`).
//!
//! Each answer follows the Pod's [`LogServing`] or, without one, the
//! kubelet-wide one: at once, after a delay, never, or an error. A Pod on a
//! node that is down gets no answer: the connection is closed, as when the
//! apiserver cannot reach a dead kubelet.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{CertificateParams, KeyPair};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::node_states::NodeStates;
use super::script::LogServing;
use crate::TestkitError;

/// What the endpoint knows of one container.
#[derive(Debug, Clone)]
pub(crate) struct ContainerLog {
    /// Its log lines, as bytes.
    pub lines: Vec<Vec<u8>>,
    /// How its Pod's logs are served, if the Pod says.
    pub serving: Option<LogServing>,
    /// The node its Pod runs on.
    pub node: String,
}

/// Logs per (namespace, pod, container).
pub(crate) type LogStore = Arc<Mutex<HashMap<(String, String, String), ContainerLog>>>;

/// Why no answer is given: the connection is dropped.
#[derive(Debug, thiserror::Error)]
#[error("the node of the pod is down")]
struct NodeDown;

/// A running log endpoint.
pub(crate) struct LogServer {
    pub port: u16,
    task: JoinHandle<()>,
}

impl Drop for LogServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LogServer {
    /// Serves `store`; `serving` is the kubelet-wide [`LogServing`].
    pub async fn start(
        store: LogStore,
        serving: watch::Receiver<LogServing>,
        nodes: Arc<NodeStates>,
    ) -> Result<Self, TestkitError> {
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])?
            .self_signed(&key)?;
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| {
                b.with_no_client_auth().with_single_cert(
                    vec![CertificateDer::from(cert.der().to_vec())],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
                )
            })
            .map_err(|e| TestkitError::Io {
                what: "configuring TLS of the kubelet log endpoint".into(),
                source: std::io::Error::other(e),
            })?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(TestkitError::io("binding the kubelet log endpoint"))?;
        let port = listener
            .local_addr()
            .map_err(TestkitError::io("reading the kubelet log endpoint address"))?
            .port();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let store = store.clone();
                let serving = serving.clone();
                let nodes = nodes.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req| {
                        let store = store.clone();
                        let serving = serving.clone();
                        let nodes = nodes.clone();
                        async move { respond(&store, serving, &nodes, &req).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Ok(Self { port, task })
    }
}

fn reply(code: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = code;
    r
}

async fn respond<B>(
    store: &LogStore,
    mut serving: watch::Receiver<LogServing>,
    nodes: &NodeStates,
    req: &Request<B>,
) -> Result<Response<Full<Bytes>>, NodeDown> {
    let parts: Vec<&str> = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .collect();
    let ["containerLogs", ns, pod, container] = parts.as_slice() else {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            format!(
                "the test kubelet serves only /containerLogs, not {}",
                req.uri().path()
            ),
        ));
    };
    let query: HashMap<&str, &str> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let key = (ns.to_string(), pod.to_string(), container.to_string());
    let lookup = || store.lock().ok().and_then(|g| g.get(&key).cloned());
    loop {
        let Some(entry) = lookup() else {
            return Ok(reply(
                StatusCode::NOT_FOUND,
                format!("container {container} of pod {ns}/{pod} has not started"),
            ));
        };
        if !nodes.is_up(&entry.node) {
            return Err(NodeDown);
        }
        let mode = entry
            .serving
            .clone()
            .unwrap_or_else(|| serving.borrow_and_update().clone());
        match mode {
            LogServing::Prompt => break,
            LogServing::Slow(d) => {
                tokio::time::sleep(d).await;
                break;
            }
            LogServing::ErrorOnce { status, message } => {
                if let Ok(mut g) = store.lock()
                    && let Some(e) = g.get_mut(&key)
                {
                    e.serving = Some(LogServing::Prompt);
                }
                return Ok(reply(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    message,
                ));
            }
            LogServing::Error { status, message } => {
                return Ok(reply(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    message,
                ));
            }
            LogServing::Hang => {
                // Until the kubelet-wide setting changes or the kubelet goes.
                if serving.changed().await.is_err() {
                    return Ok(reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the test kubelet stopped",
                    ));
                }
            }
        }
    }
    let Some(ContainerLog { lines, .. }) = lookup() else {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            format!("container {container} of pod {ns}/{pod} is gone"),
        ));
    };
    let tail = query
        .get("tailLines")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(lines.len());
    let mut text: Vec<u8> = Vec::new();
    for l in &lines[lines.len().saturating_sub(tail)..] {
        text.extend_from_slice(l);
        text.push(b'\n');
    }
    // As the kubelet does: the first limitBytes bytes of the (tailed) log,
    // cut anywhere.
    if let Some(limit) = query
        .get("limitBytes")
        .and_then(|v| v.parse::<usize>().ok())
    {
        text.truncate(limit);
    }
    Ok(reply(StatusCode::OK, text))
}
