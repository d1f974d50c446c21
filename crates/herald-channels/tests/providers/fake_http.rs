//! An HTTP fake: records every request and answers as the test's function says.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, Version};
use axum::response::Response;
use axum::Router;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub version: Version,
}

impl Seen {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

pub enum Reply {
    Answer {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// Never answers.
    Hang,
}

impl Reply {
    pub fn json(status: u16, body: Value) -> Reply {
        Reply::Answer {
            status,
            headers: vec![("content-type", "application/json".into())],
            body: body.to_string(),
        }
    }

    pub fn text(status: u16, body: &str) -> Reply {
        Reply::Answer {
            status,
            headers: vec![],
            body: body.into(),
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Reply {
        if let Reply::Answer { headers, .. } = &mut self {
            headers.push((name, value.into()));
        }
        self
    }
}

type Responder = dyn Fn(&Seen) -> Reply + Send + Sync;

#[derive(Clone)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
    reply: Arc<Responder>,
    /// Answers anything but HTTP/2 with 505 (and does not record it).
    http2_only: bool,
}

pub struct HttpFake {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl HttpFake {
    pub async fn start(reply: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> HttpFake {
        Self::serve(reply, false).await
    }

    /// A fake that speaks HTTP/2 over plain TCP (h2c with prior knowledge, as the server
    /// detects the HTTP/2 preface) and refuses HTTP/1 requests with 505.
    pub async fn start_http2_only(
        reply: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
    ) -> HttpFake {
        Self::serve(reply, true).await
    }

    async fn serve(
        reply: impl Fn(&Seen) -> Reply + Send + Sync + 'static,
        http2_only: bool,
    ) -> HttpFake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let fake = Fake {
            seen: Arc::default(),
            reply: Arc::new(reply),
            http2_only,
        };
        let seen = fake.seen.clone();
        let app = Router::new().fallback(handle).with_state(fake);
        tokio::spawn(async move { axum::serve(listener, app).await });
        HttpFake { port, seen }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The one request the fake got.
    pub fn only(&self) -> Seen {
        let seen = self.seen();
        assert_eq!(seen.len(), 1, "{seen:?}");
        seen[0].clone()
    }
}

async fn handle(State(fake): State<Fake>, request: Request) -> Response {
    if fake.http2_only && request.version() != Version::HTTP_2 {
        return Response::builder()
            .status(StatusCode::HTTP_VERSION_NOT_SUPPORTED)
            .body(Body::from("HTTP/2 only"))
            .unwrap();
    }
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let seen = Seen {
        method: parts.method.to_string(),
        target: parts
            .uri
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        headers: parts.headers,
        body: body.to_vec(),
        version: parts.version,
    };
    fake.seen.lock().unwrap().push(seen.clone());
    match (fake.reply)(&seen) {
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            unreachable!()
        }
        Reply::Answer {
            status,
            headers,
            body,
        } => {
            let mut response = Response::builder().status(StatusCode::from_u16(status).unwrap());
            for (name, value) in headers {
                response = response.header(name, value);
            }
            response.body(Body::from(body)).unwrap()
        }
    }
}

/// A raw HTTP server that answers `status` with a body that never ends: a client that reads it
/// all never finishes. Counts the bytes it managed to write.
pub async fn endless_body(status: u16) -> (u16, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let written = Arc::new(Mutex::new(0usize));
    let counter = written.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 8192];
                let _ = socket.read(&mut request).await;
                let head = format!("HTTP/1.1 {status} X\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n");
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 16 * 1024];
                // Bounded so a broken client cannot keep this running: 64 MiB at most.
                for _ in 0..4096 {
                    if socket.write_all(&chunk).await.is_err() {
                        return;
                    }
                    *counter.lock().unwrap() += chunk.len();
                }
            });
        }
    });
    (port, written)
}
