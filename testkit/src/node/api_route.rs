//! The `kubernetes` Service for the node's Pods: what kube-proxy does for
//! that one Service, so that a Pod using its in-cluster config (the
//! controller installed by the chart) reaches the apiserver.
//!
//! The kubelet gives every Pod `KUBERNETES_SERVICE_HOST` and `_PORT`, the
//! cluster IP and port of the `kubernetes` Service. There is no kube-proxy
//! here, and the apiserver listens on loopback only. So an nftables rule of
//! the node's own (table `ip testlayer_node_N`, matching only the node's Pod
//! range) sends the Pods' connections to that address to a listener on the
//! node's address, which forwards each to the apiserver on loopback. The
//! apiserver's certificate names the cluster IP, so TLS is checked end to
//! end as in any cluster.

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::config::{Layout, SERVICE_IP, SERVICE_PORT};
use crate::TestkitError;

/// The nftables table of the node's rule.
fn table(l: &Layout) -> String {
    format!("testlayer_node_{}", l.slot)
}

/// Runs `nft ARGS`, failing with its message.
fn nft(args: &[&str]) -> Result<(), TestkitError> {
    let out = Command::new("nft")
        .args(args)
        .output()
        .map_err(TestkitError::io("running nft (Debian package nftables)"))?;
    if out.status.success() {
        return Ok(());
    }
    Err(TestkitError::Node {
        problem: format!(
            "nft {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
    })
}

/// Removes the node's rule (a killed holder's too); nothing if absent.
pub fn remove(l: &Layout) {
    let _ = Command::new("nft")
        .args(["delete", "table", "ip", &table(l)])
        .output();
}

/// The route while it serves; dropping it stops the listener and removes
/// the rule.
#[derive(Debug)]
pub struct ApiRoute {
    layout: Layout,
    stop: Arc<AtomicBool>,
    local: SocketAddr,
}

impl ApiRoute {
    /// Forwards the Pods' connections to the `kubernetes` Service to
    /// `apiserver` (the apiserver's loopback address).
    pub fn start(l: &Layout, apiserver: SocketAddr) -> Result<ApiRoute, TestkitError> {
        let listener = TcpListener::bind((l.node_ip(), 0))
            .map_err(TestkitError::io(format!("listening on {}", l.node_ip())))?;
        let local = listener
            .local_addr()
            .map_err(TestkitError::io("reading the listener's address"))?;
        remove(l);
        let t = table(l);
        nft(&["add", "table", "ip", &t])?;
        nft(&[
            "add",
            "chain",
            "ip",
            &t,
            "prerouting",
            "{ type nat hook prerouting priority dstnat; }",
        ])?;
        let rule = format!(
            "ip saddr {} ip daddr {SERVICE_IP} tcp dport {SERVICE_PORT} dnat to {local}",
            l.pod_subnet()
        );
        let mut args = vec!["add", "rule", "ip", &t, "prerouting"];
        args.extend(rule.split(' '));
        nft(&args)?;

        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::Builder::new()
            .name("api-route".into())
            .spawn(move || accept_loop(&listener, apiserver, &stopping))
            .map_err(TestkitError::io("starting the api route's thread"))?;
        tracing::debug!(%local, %apiserver, "pods reach the apiserver through {SERVICE_IP}:{SERVICE_PORT}");
        Ok(ApiRoute {
            layout: l.clone(),
            stop,
            local,
        })
    }
}

impl Drop for ApiRoute {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.local, Duration::from_millis(200));
        remove(&self.layout);
    }
}

fn accept_loop(listener: &TcpListener, apiserver: SocketAddr, stop: &AtomicBool) {
    for conn in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = conn else { continue };
        let Ok(server) = TcpStream::connect_timeout(&apiserver, Duration::from_secs(5)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        let _ = std::thread::Builder::new()
            .name("api-route-up".into())
            .spawn(move || pipe(client, server));
        let _ = std::thread::Builder::new()
            .name("api-route-down".into())
            .spawn(move || pipe(s2, c2));
    }
}

/// Copies `from` to `to` until `from` ends, then ends `to`'s writing side.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
