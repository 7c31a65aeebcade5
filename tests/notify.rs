//! Notifications end to end: runs against the real control plane with the
//! controller in-process, each target's receiver a real HTTP server on
//! 127.0.0.1 that records every request (and plays GitHub's API for commit
//! statuses). Each notification is sent at most once per outcome, retried
//! on 5xx, never on 4xx, never twice across a restart, and no secret shows
//! in a status, an Event or a log.

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use common::{Fixture, eventually, test_layer_run};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use testlayer::api::{
    LayerPhase, NotificationState, NotificationStatus, TestLayerRun, TestLayerSchedule,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------
// Captured logs: every line the in-process controllers log, for the check
// that no secret is ever in one.

static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    LOGS.get_or_init(|| {
        let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
        let w = Capture(buf.clone());
        let _ = tracing_subscriber::fmt()
            .with_env_filter("debug,kube=info,hyper=info,rustls=info,tower=info,h2=info")
            .with_writer(move || w.clone())
            .with_ansi(false)
            .try_init();
        buf
    })
    .clone()
}

// ---------------------------------------------------------------------------
// The receiver: HTTP/1.1 over a TcpListener, one request per connection.

/// A request as received.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// A receiver answering the n-th request with `codes[n]` (the last code
/// after that), after `delay`.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(codes: Vec<u16>, delay: Duration) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let seen = got.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                let (seen, codes) = (seen.clone(), codes.clone());
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut tcp).await else {
                        return;
                    };
                    let n = {
                        let mut s = seen.lock().expect("lock");
                        s.push(req);
                        s.len()
                    };
                    tokio::time::sleep(delay).await;
                    let code = codes.get(n - 1).or(codes.last()).copied().unwrap_or(200);
                    let answer = format!(
                        "HTTP/1.1 {code} Whatever\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
                    );
                    let _ = tcp.write_all(answer.as_bytes()).await;
                    let _ = tcp.shutdown().await;
                });
            }
        });
        Receiver { url, got }
    }

    fn requests(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }
}

async fn read_request(tcp: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = tcp.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Received {
        method,
        path,
        headers,
        body,
    })
}

// ---------------------------------------------------------------------------
// Checks of what was received.

/// The HMAC-SHA256 of `body` under `key`, by openssl (not the code that
/// signed it), as `sha256=<hex>`.
fn openssl_hmac(key: &str, body: &[u8]) -> String {
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", key])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body)
        .expect("write");
    let out = child.wait_with_output().expect("openssl ends");
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = text
        .trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string();
    format!("sha256={hex}")
}

/// Problems of `doc` against the JSON Schema `schema` (the keywords
/// docs/reference/notification.schema.json uses: type, const, enum,
/// required, properties, additionalProperties, items, minItems, maxItems,
/// minimum, minLength, maxLength; `format` is an annotation).
fn schema_problems(schema: &Value, doc: &Value, at: &str, out: &mut Vec<String>) {
    let type_ok = |t: &str| match t {
        "null" => doc.is_null(),
        "string" => doc.is_string(),
        "integer" => doc.is_i64() || doc.is_u64(),
        "number" => doc.is_number(),
        "object" => doc.is_object(),
        "array" => doc.is_array(),
        "boolean" => doc.is_boolean(),
        other => panic!("the schema uses type {other}, which this check does not know"),
    };
    let known = [
        "$schema",
        "$id",
        "title",
        "description",
        "type",
        "const",
        "enum",
        "required",
        "properties",
        "additionalProperties",
        "items",
        "minItems",
        "maxItems",
        "minimum",
        "minLength",
        "maxLength",
        "format",
    ];
    for k in schema.as_object().expect("a schema is an object").keys() {
        assert!(
            known.contains(&k.as_str()),
            "the schema uses {k}, which this check does not know"
        );
    }
    match &schema["type"] {
        Value::String(t) if !type_ok(t) => out.push(format!("{at}: not {t}: {doc}")),
        Value::Array(ts) if !ts.iter().any(|t| type_ok(t.as_str().unwrap_or_default())) => {
            out.push(format!("{at}: none of {ts:?}: {doc}"))
        }
        _ => {}
    }
    if let Some(c) = schema.get("const")
        && c != doc
    {
        out.push(format!("{at}: {doc} is not {c}"));
    }
    if let Some(Value::Array(e)) = schema.get("enum")
        && !e.contains(doc)
    {
        out.push(format!("{at}: {doc} is none of {e:?}"));
    }
    if let Some(n) = schema.get("minimum").and_then(Value::as_f64)
        && doc.as_f64().is_some_and(|d| d < n)
    {
        out.push(format!("{at}: {doc} < {n}"));
    }
    if let Some(s) = doc.as_str() {
        let len = s.chars().count() as u64;
        if schema
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            out.push(format!("{at}: too short"));
        }
        if schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            out.push(format!("{at}: too long"));
        }
    }
    if let Some(items) = doc.as_array() {
        let n = items.len() as u64;
        if schema
            .get("minItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| n < m)
        {
            out.push(format!("{at}: fewer than minItems"));
        }
        if schema
            .get("maxItems")
            .and_then(Value::as_u64)
            .is_some_and(|m| n > m)
        {
            out.push(format!("{at}: more than maxItems"));
        }
        if let Some(s) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                schema_problems(s, item, &format!("{at}[{i}]"), out);
            }
        }
    }
    if let Some(obj) = doc.as_object() {
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap_or_default();
            if !obj.contains_key(r) {
                out.push(format!("{at}.{r}: missing"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, v) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(s) => schema_problems(s, v, &format!("{at}.{k}"), out),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    out.push(format!("{at}.{k}: not in the schema"))
                }
                None => {}
            }
        }
    }
}

fn assert_schema_valid(doc: &Value) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/reference/notification.schema.json"
    );
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the schema")).expect("JSON");
    let mut problems = Vec::new();
    schema_problems(&schema, doc, "$", &mut problems);
    assert!(problems.is_empty(), "{problems:#?}\n{doc:#}");
}

// ---------------------------------------------------------------------------
// Runs.

const PASS: &str = "echo '3 passed in 0.1s'";
const FAIL: &str = "echo '1 failed, 2 passed in 0.1s'; exit 1";

fn config(command: &str) -> String {
    format!(
        "layers:\n  nightly:\n    execution_mode: sequential\n    categories:\n      - name: unit\n        timeout_seconds: 30\n        command: \"{}\"\n",
        command.replace('"', "\\\"")
    )
}

/// Creates a Secret `name` with `data` (as stringData).
async fn secret(fx: &Fixture, name: &str, data: Value) {
    let s: Secret = serde_json::from_value(json!({"metadata": {"name": name}, "stringData": data}))
        .expect("secret");
    fx.api::<Secret>()
        .create(&PostParams::default(), &s)
        .await
        .unwrap_or_else(|e| panic!("creating Secret {name}: {e}"));
}

/// Creates run `name` of layer `nightly` running `command`, with `notify`
/// and `annotations`.
async fn submit(fx: &Fixture, name: &str, command: &str, notify: Value, annotations: Value) {
    let mut run = test_layer_run(name, "nightly", &config(command), json!({"notify": notify}));
    run.metadata.annotations = serde_json::from_value(annotations).expect("annotations");
    fx.runs()
        .create(&PostParams::default(), &run)
        .await
        .unwrap_or_else(|e| panic!("creating TestLayerRun {name}: {e}"));
}

/// Waits until run `name` ended and each of its notifications is final.
async fn settled(
    fx: &Fixture,
    name: &str,
    entries: usize,
) -> (TestLayerRun, Vec<NotificationStatus>) {
    let runs = fx.runs();
    eventually(
        Duration::from_secs(90),
        format!("{name}'s notifications"),
        async || {
            let r = runs.get(name).await.expect("the run");
            let st = r.status.clone().unwrap_or_default();
            let done = st.phase.is_some_and(|p| p.is_terminal())
                && st.notifications.len() == entries
                && st.notifications.iter().all(|n| n.state.is_final());
            if done {
                Ok((r, st.notifications))
            } else {
                Err(format!("{:?} {:?}", st.phase, st.notifications))
            }
        },
    )
    .await
}

fn webhook(url: &str, when: &str) -> Value {
    json!({"when": when, "webhook": {"url": url, "secretRef": {"name": "hook", "key": "key"}}})
}

const HMAC_KEY: &str = "hmac-key-Zq8wP1";

// ---------------------------------------------------------------------------
// The tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_sends_one_signed_schema_valid_post_for_a_failed_run_and_none_for_a_passed_one()
{
    capture_logs();
    let fx = Fixture::new("notify-fail").await;
    secret(&fx, "hook", json!({"key": HMAC_KEY})).await;
    let rx = Receiver::start(vec![200], Duration::ZERO).await;
    let hook = format!("{}/hooks/nightly", rx.url);
    submit(
        &fx,
        "bad",
        FAIL,
        json!([webhook(&hook, "OnFailure")]),
        json!({}),
    )
    .await;
    submit(
        &fx,
        "good",
        PASS,
        json!([webhook(&hook, "OnFailure")]),
        json!({}),
    )
    .await;
    let (_, bad) = settled(&fx, "bad", 1).await;
    let (_, good) = settled(&fx, "good", 1).await;
    assert_eq!(bad[0].state, NotificationState::Sent, "{bad:?}");
    assert_eq!((bad[0].attempts, bad[0].response_code), (1, Some(200)));
    assert_eq!(bad[0].outcome, LayerPhase::Failed);
    assert_eq!(good[0].state, NotificationState::Skipped, "{good:?}");
    // Nothing more comes later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = rx.requests();
    assert_eq!(got.len(), 1, "{got:#?}");
    let r = &got[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/hooks/nightly")
    );
    assert_eq!(
        r.headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    assert_eq!(
        r.headers.get("x-testlayer-signature-256"),
        Some(&openssl_hmac(HMAC_KEY, &r.body)),
        "the signature is the HMAC-SHA256 of the body as sent"
    );
    let doc = r.json();
    assert_schema_valid(&doc);
    assert_eq!(doc["name"], "bad");
    assert_eq!(doc["namespace"], fx.ns.as_str());
    assert_eq!(doc["outcome"], "Failed");
    assert_eq!(
        doc["counts"],
        json!({"passed": 2, "failed": 1, "skipped": 0})
    );
    assert_eq!(doc["failedCategories"][0]["name"], "unit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_sends_one_each_and_on_change_only_when_the_outcome_changed() {
    capture_logs();
    let fx = Fixture::new("notify-change").await;
    secret(&fx, "hook", json!({"key": HMAC_KEY})).await;
    let always = Receiver::start(vec![200], Duration::ZERO).await;
    let change = Receiver::start(vec![200], Duration::ZERO).await;
    let targets = json!([
        webhook(&format!("{}/always", always.url), "Always"),
        webhook(&format!("{}/change", change.url), "OnChange"),
    ]);
    // One after the other: each compares with the one before.
    let plan = [
        ("r1", FAIL),
        ("r2", FAIL),
        ("r3", PASS),
        ("r4", PASS),
        ("r5", FAIL),
    ];
    for (name, command) in plan {
        submit(&fx, name, command, targets.clone(), json!({})).await;
        settled(&fx, name, 2).await;
        // Creation times are whole seconds: the next run is created later.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let names = |rx: &Receiver| -> Vec<String> {
        rx.requests()
            .iter()
            .map(|r| {
                let doc = r.json();
                assert_schema_valid(&doc);
                format!(
                    "{} {}",
                    doc["name"].as_str().unwrap_or_default(),
                    doc["outcome"].as_str().unwrap_or_default()
                )
            })
            .collect()
    };
    let mut sent = names(&always);
    sent.sort();
    assert_eq!(
        sent,
        [
            "r1 Failed",
            "r2 Failed",
            "r3 Succeeded",
            "r4 Succeeded",
            "r5 Failed"
        ]
    );
    let mut changed = names(&change);
    changed.sort();
    // r1 is the first of the layer; r2 and r4 ended as the run before them.
    assert_eq!(changed, ["r1 Failed", "r3 Succeeded", "r5 Failed"]);
    let (_, r2) = settled(&fx, "r2", 2).await;
    assert_eq!(r2[1].state, NotificationState::Skipped);
    assert!(
        r2[1]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("previous run ended Failed"),
        "{r2:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_and_client_errors_are_not() {
    capture_logs();
    let fx = Fixture::new("notify-retry").await;
    secret(&fx, "hook", json!({"key": HMAC_KEY})).await;
    let flaky = Receiver::start(vec![500, 500, 200], Duration::ZERO).await;
    let refusing = Receiver::start(vec![400], Duration::ZERO).await;
    submit(
        &fx,
        "r",
        FAIL,
        json!([
            webhook(&format!("{}/flaky", flaky.url), "OnFailure"),
            webhook(&format!("{}/refusing", refusing.url), "OnFailure"),
        ]),
        json!({}),
    )
    .await;
    let (_, n) = settled(&fx, "r", 2).await;
    assert_eq!(n[0].state, NotificationState::Sent, "{n:?}");
    assert_eq!((n[0].attempts, n[0].response_code), (3, Some(200)), "{n:?}");
    assert_eq!(flaky.requests().len(), 3);
    let bodies: Vec<Vec<u8>> = flaky.requests().into_iter().map(|r| r.body).collect();
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "each attempt sends the same body"
    );
    assert_eq!(n[1].state, NotificationState::Failed, "{n:?}");
    assert_eq!((n[1].attempts, n[1].response_code), (1, Some(400)), "{n:?}");
    assert!(
        n[1].last_error
            .as_deref()
            .unwrap_or_default()
            .contains("HTTP 400"),
        "{n:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(refusing.requests().len(), 1, "a 4xx is not tried again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_restarted_while_sending_never_sends_twice() {
    capture_logs();
    let mut fx = Fixture::new("notify-restart").await;
    secret(&fx, "hook", json!({"key": HMAC_KEY})).await;
    // The receiver answers late: the controller is stopped mid-request.
    let slow = Receiver::start(vec![200], Duration::from_secs(8)).await;
    submit(
        &fx,
        "r",
        FAIL,
        json!([webhook(&format!("{}/slow", slow.url), "OnFailure")]),
        json!({}),
    )
    .await;
    eventually(Duration::from_secs(60), "the first request", async || {
        (!slow.requests().is_empty()).then_some(())
    })
    .await;
    fx.stop_controller();
    tokio::time::sleep(Duration::from_secs(1)).await;
    fx.start_controller().await;
    let (_, n) = settled(&fx, "r", 1).await;
    assert_eq!(n[0].state, NotificationState::Failed, "{n:?}");
    assert!(
        n[0].last_error
            .as_deref()
            .unwrap_or_default()
            .contains("at most once"),
        "{n:?}"
    );
    // Longer than every retry would take.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        slow.requests().len(),
        1,
        "never two deliveries of one notification"
    );

    // A restart as soon as the run ended, its notification recorded or
    // on its way: it is sent once, by one controller or the other (or, if
    // the stop came between the record of the attempt and its answer,
    // recorded Failed and not sent again).
    let quick = Receiver::start(vec![200], Duration::ZERO).await;
    submit(
        &fx,
        "r2",
        FAIL,
        json!([webhook(&format!("{}/quick", quick.url), "OnFailure")]),
        json!({}),
    )
    .await;
    fx.wait_for("r2", Duration::from_secs(60), "the end", |r| {
        r.status
            .as_ref()
            .and_then(|s| s.phase)
            .is_some_and(|p| p.is_terminal())
    })
    .await;
    fx.stop_controller();
    tokio::time::sleep(Duration::from_millis(500)).await;
    fx.start_controller().await;
    let (_, n) = settled(&fx, "r2", 1).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let sent = quick.requests().len();
    match n[0].state {
        NotificationState::Sent => assert_eq!(sent, 1, "{n:?}"),
        _ => {
            assert!(sent <= 1, "{n:?}");
            assert!(
                n[0].last_error
                    .as_deref()
                    .unwrap_or_default()
                    .contains("at most once"),
                "{n:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_github_commit_statuses_have_their_documented_shapes() {
    capture_logs();
    let fx = Fixture::new("notify-kinds").await;
    let slack = Receiver::start(vec![200], Duration::ZERO).await;
    let github = Receiver::start(vec![201], Duration::ZERO).await;
    let token = "ghp_TOKENabcdef0123456789";
    secret(
        &fx,
        "slack",
        json!({"url": format!("{}/services/T000/B000/XXXXsecret\n", slack.url)}),
    )
    .await;
    secret(&fx, "gh", json!({"token": token})).await;
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let targets = json!([
        {"when": "Always", "slack": {"urlFrom": {"name": "slack", "key": "url"}}},
        {"when": "Always", "githubStatus": {"repository": "o/r", "apiUrl": github.url, "tokenFrom": {"name": "gh", "key": "token"}}},
    ]);
    submit(
        &fx,
        "r",
        FAIL,
        targets.clone(),
        json!({"testlayer.dev/revision": sha}),
    )
    .await;
    let (_, n) = settled(&fx, "r", 2).await;
    assert!(
        n.iter().all(|e| e.state == NotificationState::Sent),
        "{n:?}"
    );

    let s = &slack.requests()[0];
    assert_eq!(
        (s.method.as_str(), s.path.as_str()),
        ("POST", "/services/T000/B000/XXXXsecret")
    );
    let msg = s.json();
    assert!(
        msg["text"]
            .as_str()
            .is_some_and(|t| t.contains("Failed") && t.contains("run r")),
        "{msg}"
    );
    assert_eq!(msg["blocks"][0]["type"], "section");
    assert_eq!(msg["blocks"][0]["text"]["type"], "mrkdwn");
    assert_eq!(msg["blocks"][1]["type"], "context");

    let g = &github.requests()[0];
    assert_eq!(g.method, "POST");
    assert_eq!(g.path, format!("/repos/o/r/statuses/{sha}"));
    assert_eq!(
        g.headers.get("authorization"),
        Some(&format!("Bearer {token}"))
    );
    assert_eq!(
        g.headers.get("accept").map(String::as_str),
        Some("application/vnd.github+json")
    );
    let st = g.json();
    assert_eq!(st["state"], "failure");
    assert_eq!(st["context"], "testlayer/nightly");
    let d = st["description"].as_str().expect("description");
    assert!(!d.is_empty() && d.chars().count() <= 140, "{d}");
    for k in st.as_object().expect("object").keys() {
        assert!(
            ["state", "target_url", "description", "context"].contains(&k.as_str()),
            "{k}"
        );
    }

    // A run without a revision: nothing posted, the reason recorded and told.
    submit(&fx, "norev", PASS, json!([targets[1].clone()]), json!({})).await;
    let (_, n) = settled(&fx, "norev", 1).await;
    assert_eq!(
        (n[0].state, n[0].attempts),
        (NotificationState::Failed, 0),
        "{n:?}"
    );
    assert!(
        n[0].last_error
            .as_deref()
            .unwrap_or_default()
            .contains("no revision"),
        "{n:?}"
    );
    let events = fx
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("events");
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("NotificationNotSent")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("norev")),
        "a NotificationNotSent Event"
    );
    assert_eq!(github.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_are_named_and_no_secret_shows_in_status_events_or_logs() {
    let logs = capture_logs();
    let fx = Fixture::new("notify-secret").await;
    let refusing = Receiver::start(vec![403], Duration::ZERO).await;
    let hook_url = format!("{}/hook/tok-URLsecret-98765", refusing.url);
    secret(&fx, "hook", json!({"url": hook_url, "key": HMAC_KEY})).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("address").port()
    };
    let dead_url = format!("http://127.0.0.1:{closed}/services/DEADsecret-4242");
    secret(&fx, "slack", json!({"url": dead_url})).await;
    secret(&fx, "gh", json!({"token": "ghp_NEVERshown-31337"})).await;
    submit(
        &fx,
        "r",
        FAIL,
        json!([
            {"webhook": {"urlFrom": {"name": "hook", "key": "url"}, "secretRef": {"name": "hook", "key": "key"}}},
            {"slack": {"urlFrom": {"name": "slack", "key": "url"}}},
            {"githubStatus": {"repository": "o/r", "apiUrl": format!("http://127.0.0.1:{closed}"), "sha": "abcdef0", "tokenFrom": {"name": "gh", "key": "token"}}},
            {"slack": {"urlFrom": {"name": "missing", "key": "url"}}},
        ]),
        json!({}),
    )
    .await;
    let (run, n) = settled(&fx, "r", 4).await;
    assert_eq!(n[0].response_code, Some(403), "{n:?}");
    assert!(
        n.iter().all(|e| e.state == NotificationState::Failed),
        "{n:?}"
    );
    assert_eq!(
        n[1].attempts, 5,
        "a lost connection is tried 5 times: {n:?}"
    );
    assert!(
        n[3].last_error
            .as_deref()
            .unwrap_or_default()
            .contains("Secret missing not found"),
        "{n:?}"
    );

    // A run with mistakes in its targets: Failed and Stalled, each named.
    submit(
        &fx,
        "bad-spec",
        PASS,
        json!([{"when": "Always"}, {"webhook": {"url": "ftp://x"}}, {"githubStatus": {"repository": "nope"}}]),
        json!({}),
    )
    .await;
    let bad = fx.wait_done("bad-spec", Duration::from_secs(30)).await;
    let st = bad.status.clone().unwrap_or_default();
    assert_eq!(st.phase, Some(LayerPhase::Failed));
    let stalled = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .expect("Stalled");
    assert_eq!(
        (stalled.status.as_str(), stalled.reason.as_str()),
        ("True", "InvalidSpec")
    );
    for part in [
        "spec.notify[0]: set exactly one of webhook, slack and githubStatus",
        "spec.notify[1].webhook.url: the scheme must be http or https",
        "spec.notify[2].githubStatus.repository: \"nope\" is not owner/name",
        "spec.notify[2].githubStatus.tokenFrom: missing",
    ] {
        assert!(
            stalled.message.contains(part),
            "{part} in {}",
            stalled.message
        );
    }
    assert!(st.notifications.is_empty(), "{st:?}");

    let secrets = [
        "tok-URLsecret-98765",
        "DEADsecret-4242",
        "ghp_NEVERshown-31337",
        HMAC_KEY,
    ];
    let status = serde_json::to_string(&run.status).expect("status");
    let events: Vec<String> = fx
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .map(|e| {
            format!(
                "{} {}",
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default()
            )
        })
        .collect();
    assert!(
        events.iter().any(|e| e.starts_with("NotificationFailed")),
        "{events:#?}"
    );
    let logged = String::from_utf8_lossy(&logs.lock().expect("logs")).to_string();
    assert!(
        logged.contains("notification attempt"),
        "the sender's logs were captured"
    );
    for s in secrets {
        assert!(!status.contains(s), "{s} in the status: {status}");
        assert!(
            !events.iter().any(|e| e.contains(s)),
            "{s} in an Event: {events:#?}"
        );
        assert!(!logged.contains(s), "{s} in the controller's logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suite_notifies_once_with_its_outcome_when_its_last_run_ended() {
    capture_logs();
    let fx = Fixture::new("notify-suite").await;
    secret(&fx, "hook", json!({"key": HMAC_KEY})).await;
    let rx = Receiver::start(vec![200], Duration::ZERO).await;
    let config = "layers:\n  fast:\n    execution_mode: sequential\n    categories:\n      - name: smoke\n        timeout_seconds: 30\n        command: \"echo '1 failed in 0.1s'; exit 1\"\n  slow:\n    execution_mode: sequential\n    categories:\n      - name: e2e\n        timeout_seconds: 30\n        command: \"sleep 3; echo '4 passed in 3s'\"\n";
    for layer in ["fast", "slow"] {
        let name = format!("s1-{layer}");
        let mut run = test_layer_run(
            &name,
            layer,
            config,
            json!({"notify": [webhook(&format!("{}/suite", rx.url), "Always")]}),
        );
        run.metadata.labels = Some([("testlayer.dev/suite".to_string(), "s1".to_string())].into());
        run.metadata.annotations = Some(
            [(
                "testlayer.dev/suite-layers".to_string(),
                "fast,slow".to_string(),
            )]
            .into(),
        );
        fx.runs()
            .create(&PostParams::default(), &run)
            .await
            .expect("a suite run");
    }
    // The first run by name tells the suite's outcome, once the last ended.
    let (_, n) = settled(&fx, "s1-fast", 1).await;
    assert_eq!(
        (n[0].state, n[0].outcome),
        (NotificationState::Sent, LayerPhase::Failed),
        "{n:?}"
    );
    let other = fx.wait_done("s1-slow", Duration::from_secs(60)).await;
    assert!(other.status.unwrap_or_default().notifications.is_empty());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = rx.requests();
    assert_eq!(got.len(), 1, "{got:#?}");
    let doc = got[0].json();
    assert_schema_valid(&doc);
    assert_eq!(
        (doc["suite"].as_str(), doc["outcome"].as_str()),
        (Some("s1"), Some("Failed"))
    );
    assert_eq!(
        doc["counts"],
        json!({"passed": 4, "failed": 1, "skipped": 0})
    );
    assert_eq!(doc["runs"].as_array().map(Vec::len), Some(2));
    assert!(doc["completionTime"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedules_template_notify_flows_into_its_runs() {
    capture_logs();
    let fx = Fixture::new("notify-sched").await;
    secret(&fx, "hook", json!({"key": HMAC_KEY})).await;
    let rx = Receiver::start(vec![200], Duration::ZERO).await;
    let notify = json!([webhook(&format!("{}/nightly", rx.url), "Always")]);
    let schedule: TestLayerSchedule = serde_json::from_value(json!({
        "apiVersion": "testlayer.dev/v1alpha1", "kind": "TestLayerSchedule",
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "*/3 * * * * *", "concurrencyPolicy": "Forbid",
            "template": {"spec": {"layer": "nightly", "image": "busybox",
                "config": {"inline": config(FAIL)}, "notify": notify}}},
    }))
    .expect("schedule");
    let api = fx.api::<TestLayerSchedule>();
    api.create(&PostParams::default(), &schedule)
        .await
        .expect("schedule");
    let first = eventually(
        Duration::from_secs(30),
        "a run of the schedule",
        async || {
            let runs = fx
                .runs()
                .list(&ListParams::default().labels("testlayer.dev/schedule=nightly"))
                .await
                .expect("runs");
            runs.items.into_iter().next()
        },
    )
    .await;
    api.patch(
        "nightly",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": true}})),
    )
    .await
    .expect("suspend");
    let name = first.metadata.name.clone().expect("a name");
    assert_eq!(
        serde_json::to_value(&first.spec.notify).expect("json"),
        notify
    );
    let (_, n) = settled(&fx, &name, 1).await;
    assert_eq!(n[0].state, NotificationState::Sent, "{n:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let told: Vec<Value> = rx
        .requests()
        .iter()
        .map(Received::json)
        .filter(|d| d["name"] == name.as_str())
        .collect();
    assert_eq!(told.len(), 1, "{told:#?}");
    assert_schema_valid(&told[0]);
    assert_eq!(told[0]["schedule"], "nightly");
    assert_eq!(
        told[0]["suite"],
        Value::Null,
        "a tick of one layer is told as its run"
    );
}
