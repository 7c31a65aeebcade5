//! The kubelet's read-only HTTPS endpoint for container logs, which the
//! apiserver proxies `pods/log` requests to
//! (`/containerLogs/{namespace}/{pod}/{container}?tailLines=N&limitBytes=N`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{CertificateParams, KeyPair};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::TestkitError;

/// Log lines per (namespace, pod, container).
pub(crate) type LogStore = Arc<Mutex<HashMap<(String, String, String), Vec<String>>>>;

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
    pub async fn start(store: LogStore) -> Result<Self, TestkitError> {
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
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = service_fn(move |req| {
                        let store = store.clone();
                        async move { Ok::<_, Infallible>(respond(&store, &req)) }
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

fn respond<B>(store: &LogStore, req: &Request<B>) -> Response<Full<Bytes>> {
    let reply = |code: StatusCode, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = code;
        r
    };
    let parts: Vec<&str> = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .collect();
    let ["containerLogs", ns, pod, container] = parts.as_slice() else {
        return reply(
            StatusCode::NOT_FOUND,
            format!(
                "the test kubelet serves only /containerLogs, not {}",
                req.uri().path()
            ),
        );
    };
    let query: HashMap<&str, &str> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let lines = store.lock().ok().and_then(|g| {
        g.get(&(ns.to_string(), pod.to_string(), container.to_string()))
            .cloned()
    });
    let Some(lines) = lines else {
        return reply(
            StatusCode::NOT_FOUND,
            format!("container {container} of pod {ns}/{pod} has not started"),
        );
    };
    let tail = query
        .get("tailLines")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(lines.len());
    let mut text: String = lines[lines.len().saturating_sub(tail)..]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect();
    if let Some(limit) = query
        .get("limitBytes")
        .and_then(|v| v.parse::<usize>().ok())
        && text.len() > limit
    {
        let mut cut = limit;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    reply(StatusCode::OK, text)
}
