//! Waiting for required services on a laptop: a TCP connect to each address.

use std::time::{Duration, Instant};

use tokio::net::TcpStream;

/// Waits until every `(name, address)` accepts a TCP connection, up to `bound`.
/// Returns the services still not reachable when the bound ran out.
pub async fn wait_for(services: &[(String, String)], bound: Duration) -> Vec<String> {
    let deadline = Instant::now() + bound;
    let mut left: Vec<&(String, String)> = services.iter().collect();
    loop {
        let mut still = Vec::new();
        for s in left {
            let attempt =
                tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(&s.1)).await;
            if !matches!(attempt, Ok(Ok(_))) {
                still.push(s);
            }
        }
        left = still;
        if left.is_empty() || Instant::now() >= deadline {
            return left.iter().map(|s| s.0.clone()).collect();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
