//! Probing required services on a laptop: a TCP connect to each address.

use std::time::Duration;

use tokio::net::TcpStream;

/// The services of `(name, address)` that do not accept a TCP connection
/// now (each connect is bounded by two seconds).
pub async fn unreachable(services: &[(String, String)]) -> Vec<String> {
    let mut left = Vec::new();
    for (name, addr) in services {
        let attempt = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await;
        if !matches!(attempt, Ok(Ok(_))) {
            left.push(name.clone());
        }
    }
    left
}
