//! The bodies as they go over the wire: built from runs like the
//! controller's, POSTed by the real client to a receiver on 127.0.0.1, and
//! the bytes received checked against `docs/reference/notification.schema.json`
//! (with the `jsonschema` validator), Slack's and GitHub's documented shapes,
//! and the signature.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::body::{self, Subject};
use super::http::{Http, Post};
use super::retry::Answer;
use super::sign::signature;
use crate::api::names::{ANNOTATION_REVISION, LABEL_SUITE};
use crate::api::{
    CategoryRun, CategoryRunSpec, CategoryRunStatus, LayerPhase, TestCounts, TestLayerRun,
    TestLayerRunSpec, TestLayerRunStatus,
};
use crate::plan::Phase;
use crate::results::{FailedTest, FailedTests};

/// A request as received: method, path, headers, body.
type Received = (String, String, Vec<(String, String)>, Vec<u8>);

/// A receiver answering `codes` in turn (the last one after that).
async fn receiver(codes: Vec<u16>) -> (SocketAddr, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let seen = got.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (seen, codes) = (seen.clone(), codes.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let (seen, codes) = (seen.clone(), codes.clone());
                    async move {
                        let method = req.method().to_string();
                        let path = req.uri().path().to_string();
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect();
                        let body = req.into_body().collect().await.expect("body").to_bytes();
                        let n = {
                            let mut s = seen.lock().expect("lock");
                            s.push((method, path, headers, body.to_vec()));
                            s.len()
                        };
                        let code = codes.get(n - 1).or(codes.last()).copied().unwrap_or(200);
                        let mut r = Response::new(Full::new(Bytes::from_static(b"{}")));
                        *r.status_mut() = hyper::StatusCode::from_u16(code).expect("code");
                        Ok::<_, std::convert::Infallible>(r)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (addr, got)
}

fn at(s: i64) -> Time {
    Time(Timestamp::from_second(1_800_000_000 + s).expect("time"))
}

fn run(name: &str, layer: &str, phase: LayerPhase, counts: TestCounts) -> TestLayerRun {
    let spec: TestLayerRunSpec =
        serde_json::from_value(json!({"layer": layer, "config": {"inline": "layers: {}"}}))
            .expect("spec");
    let mut r = TestLayerRun::new(name, spec);
    r.metadata.namespace = Some("team".into());
    r.metadata.annotations =
        Some([(ANNOTATION_REVISION.to_string(), "c0ffee".repeat(6) + "abcd")].into());
    r.status = Some(TestLayerRunStatus {
        phase: Some(phase),
        start_time: Some(at(0)),
        completion_time: Some(at(83)),
        counts: Some(counts),
        message: Some("failed: api (TestsFailed); skipped: 0".into()),
        ..Default::default()
    });
    r
}

fn category(run: &str, name: &str, index: u32, phase: Phase, failing: usize) -> CategoryRun {
    let spec: CategoryRunSpec = serde_json::from_value(json!({
        "runName": run, "layer": "core", "category": name, "index": index,
        "image": "busybox", "command": "true", "timeoutSeconds": 60.0
    }))
    .expect("spec");
    let mut c = CategoryRun::new(&format!("{run}-{name}"), spec);
    c.status = Some(CategoryRunStatus {
        phase: Some(phase),
        failed_tests: FailedTests {
            listed: (0..failing)
                .map(|i| FailedTest {
                    id: format!("tests.{name}::case_{i}"),
                    message: "x".repeat(700),
                    attempt: 1,
                })
                .collect(),
            more: 3,
        },
        ..Default::default()
    });
    c
}

fn schema() -> jsonschema::Validator {
    let text = include_str!("../../../../../docs/reference/notification.schema.json");
    let schema: Value = serde_json::from_str(text).expect("the schema is JSON");
    jsonschema::validator_for(&schema).expect("the schema is a schema")
}

fn valid(v: &jsonschema::Validator, doc: &Value) {
    let errors: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{doc:#}");
}

/// POSTs `body` to `url` once and gives back what the receiver got.
async fn over_the_wire(body: &Value, headers: Vec<(&'static str, String)>) -> (Answer, Received) {
    let (addr, got) = receiver(vec![200]).await;
    let url: hyper::Uri = format!("http://{addr}/hook/token-in-path")
        .parse()
        .expect("url");
    let http = Http::new().expect("client");
    let answer = http
        .post(Post {
            url: &url,
            headers,
            body: Bytes::from(body.to_string()),
            secrets: &[],
        })
        .await;
    let r = got.lock().expect("lock").pop().expect("a request");
    (answer, r)
}

#[tokio::test]
async fn webhook_documents_as_sent_match_the_schema_and_their_signature() {
    let v = schema();
    let failing = TestCounts {
        passed: 40,
        failed: 13,
        skipped: 2,
    };
    let r = run("nightly-1", "core", LayerPhase::Failed, failing);
    let crs: Vec<CategoryRun> = (0..14)
        .map(|i| {
            category(
                "nightly-1",
                &format!("cat{i}"),
                i,
                if i == 0 {
                    Phase::Succeeded
                } else {
                    Phase::Failed
                },
                12,
            )
        })
        .collect();
    let runs = vec![(r.clone(), crs)];
    let doc = body::webhook(&Subject {
        leader: &r,
        outcome: LayerPhase::Failed,
        runs: &runs,
        suite: None,
    });
    let key = b"hook-secret";
    let sent = doc.to_string();
    let (answer, (method, path, headers, bytes)) = over_the_wire(
        &doc,
        vec![("x-testlayer-signature-256", signature(key, sent.as_bytes()))],
    )
    .await;
    assert_eq!(answer, Answer::Status(200));
    assert_eq!(
        (method.as_str(), path.as_str()),
        ("POST", "/hook/token-in-path")
    );
    let received: Value = serde_json::from_slice(&bytes).expect("JSON");
    valid(&v, &received);
    assert_eq!(
        received["failedCategories"].as_array().map(Vec::len),
        Some(10)
    );
    assert_eq!(received["moreFailedCategories"], 3);
    assert_eq!(
        received["failedCategories"][0]["failedTests"]
            .as_array()
            .map(Vec::len),
        Some(10)
    );
    assert_eq!(received["failedCategories"][0]["moreFailedTests"], 5);
    assert_eq!(received["durationSeconds"], 83);
    let header = |k: &str| headers.iter().find(|(h, _)| h == k).map(|(_, v)| v.clone());
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    assert_eq!(
        header("x-testlayer-signature-256"),
        Some(signature(key, &bytes))
    );

    // A suite, a run that never started, a cancelled one: all valid.
    let mut a = run("s-api", "api", LayerPhase::Succeeded, TestCounts::default());
    a.metadata.labels = Some([(LABEL_SUITE.to_string(), "s".to_string())].into());
    let mut b = run(
        "s-core",
        "core",
        LayerPhase::Cancelled,
        TestCounts::default(),
    );
    if let Some(s) = b.status.as_mut() {
        s.start_time = None;
        s.counts = None;
    }
    let suite = vec![
        (a.clone(), vec![]),
        (
            b.clone(),
            vec![category("s-core", "db", 0, Phase::TimedOut, 0)],
        ),
    ];
    let doc = body::webhook(&Subject {
        leader: &a,
        outcome: LayerPhase::Cancelled,
        runs: &suite,
        suite: Some("s"),
    });
    valid(&v, &doc);
    assert_eq!(doc["suite"], "s");
    assert_eq!(doc["runs"].as_array().map(Vec::len), Some(2));
    let alone = vec![(b.clone(), vec![])];
    let doc = body::webhook(&Subject {
        leader: &b,
        outcome: LayerPhase::Cancelled,
        runs: &alone,
        suite: None,
    });
    valid(&v, &doc);
    assert_eq!(doc["startTime"], Value::Null);
}

#[tokio::test]
async fn slack_and_github_bodies_have_their_documented_shapes() {
    let r = run(
        "nightly-2",
        "core",
        LayerPhase::Failed,
        TestCounts {
            passed: 1,
            failed: 2,
            skipped: 0,
        },
    );
    let crs: Vec<CategoryRun> = (0..30)
        .map(|i| {
            category(
                "nightly-2",
                &format!("a-very-long-category-name-{i}"),
                i,
                Phase::Failed,
                1,
            )
        })
        .collect();
    let runs = vec![(r.clone(), crs)];
    let s = Subject {
        leader: &r,
        outcome: LayerPhase::Failed,
        runs: &runs,
        suite: None,
    };
    let (_, (_, _, _, bytes)) = over_the_wire(&body::slack(&s), vec![]).await;
    let slack: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert!(
        slack["text"]
            .as_str()
            .is_some_and(|t| t.contains("Failed") && t.contains("nightly-2")),
        "{slack}"
    );
    let blocks = slack["blocks"].as_array().expect("blocks");
    assert_eq!(blocks[0]["type"], "section");
    assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
    assert!(
        blocks[0]["text"]["text"]
            .as_str()
            .is_some_and(|t| t.chars().count() <= 3000)
    );
    assert_eq!(blocks[1]["type"], "context");
    assert_eq!(blocks[1]["elements"][0]["type"], "mrkdwn");

    let gh = body::github(
        &s,
        &body::github_context(&s),
        Some("https://ci.example.com/r/1"),
    );
    let (_, (_, _, _, bytes)) = over_the_wire(&gh, vec![]).await;
    let gh: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(gh["state"], "failure");
    assert_eq!(gh["context"], "testlayer/core");
    assert_eq!(gh["target_url"], "https://ci.example.com/r/1");
    let d = gh["description"].as_str().expect("description");
    assert!(
        d.chars().count() <= 140 && d.starts_with("Failed: 1 passed, 2 failed"),
        "{d}"
    );
    let keys: Vec<&String> = gh.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["context", "description", "state", "target_url"]);
    assert_eq!(body::github_state(LayerPhase::Succeeded), "success");
    assert_eq!(body::github_state(LayerPhase::TimedOut), "failure");
    assert_eq!(body::github_state(LayerPhase::Cancelled), "error");
}

#[tokio::test]
async fn the_client_reports_codes_and_lost_connections_without_the_url() {
    let (addr, got) = receiver(vec![500, 400]).await;
    let url: hyper::Uri = format!("http://{addr}/hook/s3cr3t-token")
        .parse()
        .expect("url");
    let http = Http::new().expect("client");
    let post = |http: &Http| {
        let url = url.clone();
        let http = http.clone();
        async move {
            let secrets = [url.to_string()];
            let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
            http.post(Post {
                url: &url,
                headers: vec![],
                body: Bytes::from_static(b"{}"),
                secrets: &secrets,
            })
            .await
        }
    };
    assert_eq!(post(&http).await, Answer::Status(500));
    assert_eq!(post(&http).await, Answer::Status(400));
    assert_eq!(got.lock().expect("lock").len(), 2);
    // Nobody listens on a closed port.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let gone: hyper::Uri = format!("http://127.0.0.1:{port}/hook/s3cr3t-token")
        .parse()
        .expect("url");
    let secrets = [gone.to_string()];
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let answer = http
        .post(Post {
            url: &gone,
            headers: vec![],
            body: Bytes::from_static(b"{}"),
            secrets: &secrets,
        })
        .await;
    let Answer::Connection(why) = answer else {
        panic!("{answer:?}")
    };
    assert!(!why.contains("s3cr3t"), "{why}");
}
