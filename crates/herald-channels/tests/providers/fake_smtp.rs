//! A small SMTP server: speaks EHLO/STARTTLS/AUTH/MAIL/RCPT/DATA/QUIT, in plain text, upgraded
//! with STARTTLS, or in TLS from the first byte (a certificate made for the test), records the
//! conversation (and from which command on it was encrypted), and answers RCPT and the end of
//! DATA as the test scripts it.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// How the fake speaks TLS.
#[derive(Clone, Default)]
pub enum FakeTls {
    /// Plain text only (no STARTTLS offered).
    #[default]
    None,
    /// Offers STARTTLS in its EHLO answer and upgrades when asked.
    Starttls(Arc<ServerConfig>),
    /// TLS from the first byte (SMTPS).
    Implicit(Arc<ServerConfig>),
}

/// A self-signed certificate for `127.0.0.1` and `localhost`, made now: its PEM (what a
/// provider's `ca_pem` trusts) and the server side of it.
pub struct TestCert {
    pub pem: String,
    pub server: Arc<ServerConfig>,
}

impl TestCert {
    pub fn new() -> TestCert {
        let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("a self-signed certificate");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
        let chain: Vec<CertificateDer<'static>> = vec![made.cert.der().clone()];
        let server =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_no_client_auth()
                .with_single_cert(chain, key)
                .expect("the server certificate");
        TestCert {
            pem: made.cert.pem(),
            server: Arc::new(server),
        }
    }
}

#[derive(Clone)]
pub struct Script {
    /// Say nothing at all after accepting the connection.
    pub silent: bool,
    pub rcpt_reply: &'static str,
    pub data_reply: &'static str,
    pub tls: FakeTls,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            silent: false,
            rcpt_reply: "250 2.1.5 Ok",
            data_reply: "250 2.0.0 Ok: queued as FAKE42",
            tls: FakeTls::None,
        }
    }
}

#[derive(Default)]
struct Record {
    /// Every command line the client sent (not the message itself).
    commands: Vec<String>,
    /// The index in `commands` of the first command sent over TLS, once there is one.
    tls_from: Option<usize>,
    /// Every message received with DATA, dot-unstuffed.
    messages: Vec<String>,
}

pub struct SmtpFake {
    pub port: u16,
    record: Arc<Mutex<Record>>,
}

impl SmtpFake {
    pub async fn start(script: Script) -> SmtpFake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let record: Arc<Mutex<Record>> = Arc::default();
        let r = record.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (script, r) = (script.clone(), r.clone());
                tokio::spawn(async move { serve(socket, script, r).await });
            }
        });
        SmtpFake { port, record }
    }

    pub fn commands(&self) -> Vec<String> {
        self.record.lock().unwrap().commands.clone()
    }

    /// The commands sent over TLS (all of them under implicit TLS; those after STARTTLS).
    pub fn commands_in_tls(&self) -> Vec<String> {
        let record = self.record.lock().unwrap();
        match record.tls_from {
            Some(from) => record.commands[from..].to_vec(),
            None => Vec::new(),
        }
    }

    pub fn messages(&self) -> Vec<String> {
        self.record.lock().unwrap().messages.clone()
    }
}

/// What a stretch of conversation ended with.
enum Next {
    Closed,
    /// The client asked for STARTTLS and was told to go ahead.
    StartTls,
}

async fn serve(
    socket: tokio::net::TcpStream,
    script: Script,
    record: Arc<Mutex<Record>>,
) -> std::io::Result<()> {
    if script.silent {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        return Ok(());
    }
    let mark_tls = |record: &Arc<Mutex<Record>>| {
        let mut r = record.lock().unwrap();
        r.tls_from = Some(r.commands.len());
    };
    match &script.tls {
        FakeTls::Implicit(config) => {
            let Some(tls) = handshake(config, socket).await else {
                return Ok(());
            };
            mark_tls(&record);
            let mut stream = BufReader::new(tls);
            greet(&mut stream).await?;
            converse(&mut stream, &script, false, &record).await?;
        }
        FakeTls::Starttls(config) => {
            let mut stream = BufReader::new(socket);
            greet(&mut stream).await?;
            if let Next::StartTls = converse(&mut stream, &script, true, &record).await? {
                let Some(tls) = handshake(config, stream.into_inner()).await else {
                    return Ok(());
                };
                mark_tls(&record);
                // A new session: the client greets again (EHLO) and goes on encrypted.
                converse(&mut BufReader::new(tls), &script, false, &record).await?;
            }
        }
        FakeTls::None => {
            let mut stream = BufReader::new(socket);
            greet(&mut stream).await?;
            converse(&mut stream, &script, false, &record).await?;
        }
    }
    Ok(())
}

/// The server side of a TLS handshake; `None` when the client gave up (it refused the
/// certificate, say).
async fn handshake(
    config: &Arc<ServerConfig>,
    socket: tokio::net::TcpStream,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    TlsAcceptor::from(config.clone()).accept(socket).await.ok()
}

async fn greet<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
) -> std::io::Result<()> {
    stream.write_all(b"220 fake.test ESMTP\r\n").await?;
    stream.flush().await
}

/// Answers commands until QUIT, a closed connection, or (when `offer_starttls`) STARTTLS.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    script: &Script,
    offer_starttls: bool,
    record: &Arc<Mutex<Record>>,
) -> std::io::Result<Next> {
    let mut line = String::new();
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Ok(Next::Closed);
        }
        let command = line.trim_end().to_owned();
        record.lock().unwrap().commands.push(command.clone());
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" if offer_starttls => {
                "250-fake.test\r\n250-8BITMIME\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN".into()
            }
            "EHLO" => "250-fake.test\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN".into(),
            "STARTTLS" if offer_starttls => {
                stream
                    .write_all(b"220 2.0.0 Ready to start TLS\r\n")
                    .await?;
                stream.flush().await?;
                return Ok(Next::StartTls);
            }
            "AUTH" => "235 2.7.0 Authentication successful".into(),
            "MAIL" => "250 2.1.0 Ok".into(),
            "RCPT" => script.rcpt_reply.into(),
            "DATA" => {
                stream
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                stream.flush().await?;
                let mut message = String::new();
                loop {
                    line.clear();
                    if stream.read_line(&mut line).await? == 0 {
                        return Ok(Next::Closed);
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    message.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                record.lock().unwrap().messages.push(message);
                script.data_reply.into()
            }
            "QUIT" => {
                stream.write_all(b"221 2.0.0 Bye\r\n").await?;
                stream.flush().await?;
                return Ok(Next::Closed);
            }
            "RSET" | "NOOP" => "250 2.0.0 Ok".into(),
            _ => "502 5.5.2 Command not recognized".into(),
        };
        stream.write_all(format!("{reply}\r\n").as_bytes()).await?;
        stream.flush().await?;
    }
}
