//! Email over SMTP with lettre: one connection per message (EHLO, STARTTLS or implicit TLS,
//! AUTH, MAIL, RCPT, DATA, QUIT), driven step by step so a refusal is judged by the step that got
//! it: a permanent refusal of the RCPT is the address's fault, any other is not.

use crate::config::Secret;
use async_trait::async_trait;
use herald_core::channel::Channel;
use herald_core::delivery::{Content, Delivery, Outgoing, Provider};
use herald_core::error::Invalid;
use lettre::address::Envelope;
use lettre::message::{Mailbox, Message, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::Error as SmtpError;
use lettre::Address;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (a local relay or a test).
    None,
    /// Plain connection upgraded with STARTTLS, which the server must offer.
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Defaults by `tls`: 25 for none, 587 for starttls, 465 for tls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    pub tls: SmtpTls,
    /// The sender, `herald@example.com` or `Herald <herald@example.com>`.
    pub from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// The whole conversation, connect to QUIT.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// The EHLO name; defaults to the sender's domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello_name: Option<String>,
    /// Extra root certificates (PEM, one or more `BEGIN CERTIFICATE` blocks) trusted for this
    /// server besides the public roots: a private CA, or a self-signed server. Only with
    /// `starttls` or `tls`; the certificate is always verified, host name included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// The key of this environment's bounce webhook (`POST /v1/callback/email/{env}/`): a
    /// report is accepted only when signed with it (`X-Herald-Signature: sha256=<hex HMAC>`).
    /// Write-only; no bounce webhook without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounce_secret: Option<Secret>,
}

/// The most PEM text `ca_pem` takes.
pub const MAX_CA_PEM_BYTES: usize = 64 * 1024;

fn default_timeout_ms() -> u64 {
    15_000
}

impl SmtpConfig {
    pub const SECRETS: &'static [&'static str] = &["password", "bounce_secret"];
}

pub struct SmtpProvider {
    host: String,
    port: u16,
    tls: SmtpTls,
    /// Built once: the public roots and `ca_pem`'s (none when `tls` is `none`).
    tls_parameters: Option<TlsParameters>,
    from: Mailbox,
    credentials: Option<Credentials>,
    timeout: Duration,
    hello: ClientId,
}

impl SmtpProvider {
    pub fn new(config: SmtpConfig) -> Result<Self, Invalid> {
        let host = config.host.trim().to_owned();
        if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(Invalid::new("host", "must be a host name or IP address"));
        }
        let port = config.port.unwrap_or(match config.tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        });
        if port == 0 {
            return Err(Invalid::new("port", "must be 1 to 65535"));
        }
        if config
            .bounce_secret
            .as_ref()
            .is_some_and(|b| b.expose().len() < 16)
        {
            return Err(Invalid::new(
                "bounce_secret",
                "must be at least 16 characters",
            ));
        }
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| Invalid::new("from", format!("must be an email address: {e}")))?;
        let credentials = match (config.username, config.password) {
            (Some(user), Some(password)) => {
                Some(Credentials::new(user, password.expose().to_owned()))
            }
            (None, None) => None,
            (Some(_), None) => return Err(Invalid::new("password", "is required with username")),
            (None, Some(_)) => return Err(Invalid::new("username", "is required with password")),
        };
        if config.timeout_ms == 0 {
            return Err(Invalid::new("timeout_ms", "must be at least 1"));
        }
        let hello = ClientId::Domain(
            config
                .hello_name
                .unwrap_or_else(|| from.email.domain().to_owned()),
        );
        let tls_parameters = match config.tls {
            SmtpTls::None if config.ca_pem.is_some() => {
                return Err(Invalid::new(
                    "ca_pem",
                    "applies only with tls starttls or tls",
                ))
            }
            SmtpTls::None => None,
            SmtpTls::Starttls | SmtpTls::Tls => {
                Some(tls_parameters(&host, config.ca_pem.as_deref())?)
            }
        };
        Ok(SmtpProvider {
            host,
            port,
            tls: config.tls,
            tls_parameters,
            from,
            credentials,
            timeout: Duration::from_millis(config.timeout_ms),
            hello,
        })
    }

    fn tls_parameters(&self) -> Result<TlsParameters, Attempt> {
        self.tls_parameters.clone().ok_or_else(|| Attempt {
            step: Step::Connect,
            unusable: false,
            outcome: Delivery::Failed {
                reason: "smtp: TLS requested without TLS parameters".into(),
                identity_invalid: false,
            },
        })
    }

    async fn converse(
        &self,
        envelope: &Envelope,
        to: &Address,
        email: &[u8],
    ) -> Result<Option<String>, Attempt> {
        let implicit_tls = match self.tls {
            SmtpTls::Tls => Some(self.tls_parameters()?),
            _ => None,
        };
        let mut connection = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello,
            implicit_tls,
            None,
        )
        .await
        .map_err(|e| Attempt::failed(Step::Connect, e))?;
        let result = self.transaction(&mut connection, envelope, to, email).await;
        match &result {
            Ok(_) => {
                // The message is accepted; a failing QUIT changes nothing.
                let _ = connection.quit().await;
            }
            // A failed STARTTLS handshake leaves lettre's connection without a stream, which it
            // does not mark broken: a QUIT on it would panic. Dropping it closes the socket.
            Err(attempt) if attempt.unusable => drop(connection),
            Err(_) => connection.abort().await,
        }
        result
    }

    async fn transaction(
        &self,
        connection: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        to: &Address,
        email: &[u8],
    ) -> Result<Option<String>, Attempt> {
        if self.tls == SmtpTls::Starttls {
            if !connection.can_starttls() {
                return Err(Attempt {
                    step: Step::Connect,
                    unusable: false,
                    outcome: Delivery::Failed {
                        reason:
                            "smtp: the server does not offer STARTTLS, which tls=starttls requires"
                                .into(),
                        identity_invalid: false,
                    },
                });
            }
            connection
                .starttls(self.tls_parameters()?, &self.hello)
                .await
                .map_err(|e| Attempt {
                    unusable: true,
                    ..Attempt::failed(Step::Connect, e)
                })?;
        }
        if let Some(credentials) = &self.credentials {
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|e| Attempt::failed(Step::Auth, e))?;
        }
        let mut parameters = Vec::new();
        if !email.is_ascii()
            && connection
                .server_info()
                .supports_feature(Extension::EightBitMime)
        {
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let non_ascii_address = |a: &Address| !AsRef::<str>::as_ref(a).is_ascii();
        if envelope.from().is_some_and(non_ascii_address) || non_ascii_address(to) {
            parameters.push(MailParameter::SmtpUtfEight);
        }
        connection
            .command(Mail::new(envelope.from().cloned(), parameters))
            .await
            .map_err(|e| Attempt::failed(Step::Mail, e))?;
        connection
            .command(Rcpt::new(to.clone(), vec![]))
            .await
            .map_err(|e| Attempt::failed(Step::Rcpt, e))?;
        connection
            .command(Data)
            .await
            .map_err(|e| Attempt::failed(Step::Data, e))?;
        let accepted = connection
            .message(email)
            .await
            .map_err(|e| Attempt::failed(Step::Data, e))?;
        Ok(queue_id(&accepted.message().collect::<Vec<_>>().join(" ")))
    }
}

/// The TLS parameters for `host`: the public (webpki) roots, and the certificates of `ca_pem`.
/// `ca_pem` must hold at least one certificate, each one a root rustls accepts.
fn tls_parameters(host: &str, ca_pem: Option<&str>) -> Result<TlsParameters, Invalid> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(pem) = ca_pem {
        let bad = |why: String| Invalid::new("ca_pem", why);
        if pem.len() > MAX_CA_PEM_BYTES {
            return Err(bad(format!(
                "must be at most {} KiB of PEM",
                MAX_CA_PEM_BYTES / 1024
            )));
        }
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(bad(
                "must hold at least one PEM certificate (-----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        let certificate = Certificate::from_pem(pem.as_bytes())
            .map_err(|e| bad(format!("is not readable PEM: {e}")))?;
        builder = builder.add_root_certificate(certificate);
        return builder
            .build_rustls()
            .map_err(|e| bad(format!("holds a certificate that cannot be a root: {e}")));
    }
    builder
        .build_rustls()
        .map_err(|e| Invalid::new("tls", format!("TLS could not be set up: {e}")))
}

/// The server's id for the message, from a `250 2.0.0 Ok: queued as 4Bc1Xy` style answer, or the
/// whole answer text when it names no queue id.
fn queue_id(answer: &str) -> Option<String> {
    let answer = answer.trim();
    if answer.is_empty() {
        return None;
    }
    let id = answer
        .split_once("queued as ")
        .map(|(_, rest)| rest.split_whitespace().next().unwrap_or(rest))
        .unwrap_or(answer);
    Some(id.to_owned())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Connect,
    Auth,
    Mail,
    Rcpt,
    Data,
}

/// A failed conversation: the step that failed and what that means for the message.
struct Attempt {
    step: Step,
    outcome: Delivery,
    /// The connection must not be spoken to again (not even QUIT): a STARTTLS upgrade failed.
    unusable: bool,
}

impl Attempt {
    /// 4xx answers and network trouble retry; 5xx answers fail, and mark the address dead when
    /// they refuse the RCPT — unless the enhanced code is 5.7.x (a policy refusal, usually about
    /// the sender, not a dead mailbox).
    fn failed(step: Step, error: SmtpError) -> Attempt {
        let reason = format!("smtp {step:?}: {error}");
        let outcome = if error.is_permanent() {
            let policy = std::error::Error::source(&error)
                .is_some_and(|text| text.to_string().starts_with("5.7."));
            Delivery::Failed {
                reason,
                identity_invalid: step == Step::Rcpt && !policy,
            }
        } else {
            Delivery::Retry {
                reason,
                after: None,
            }
        };
        Attempt {
            step,
            outcome,
            unusable: false,
        }
    }
}

#[async_trait]
impl Provider for SmtpProvider {
    fn channel(&self) -> Channel {
        Channel::Email
    }

    async fn send(&self, message: &Outgoing) -> Delivery {
        let Content::Email {
            subject,
            html,
            text,
        } = &message.content
        else {
            return crate::wrong_content("smtp", Channel::Email, &message.content);
        };
        let Some(to) = message
            .identity
            .value
            .as_str()
            .and_then(|v| v.parse::<Address>().ok())
        else {
            return crate::unusable_identity("an email address");
        };
        let body = match (text, html) {
            (Some(text), Some(html)) => {
                MultiPart::alternative_plain_html(text.clone(), html.clone())
            }
            (Some(text), None) => {
                MultiPart::alternative().singlepart(SinglePart::plain(text.clone()))
            }
            (None, Some(html)) => {
                MultiPart::alternative().singlepart(SinglePart::html(html.clone()))
            }
            (None, None) => {
                return Delivery::Failed {
                    reason: "smtp: the email has neither text nor html".into(),
                    identity_invalid: false,
                }
            }
        };
        let built = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, to.clone()))
            .subject(subject)
            .message_id(Some(format!(
                "<{}@{}>",
                message.message_id,
                self.from.email.domain()
            )))
            .multipart(body);
        let email = match built {
            Ok(email) => email,
            Err(e) => {
                return Delivery::Failed {
                    reason: format!("smtp: the message could not be built: {e}"),
                    identity_invalid: false,
                }
            }
        };
        let bytes = email.formatted();
        match tokio::time::timeout(self.timeout, self.converse(email.envelope(), &to, &bytes)).await
        {
            Ok(Ok(queue_id)) => Delivery::Sent {
                provider_id: queue_id,
            },
            Ok(Err(attempt)) => {
                tracing::debug!(step = ?attempt.step, "smtp delivery failed");
                attempt.outcome
            }
            Err(_) => Delivery::Retry {
                reason: format!("smtp: no answer within {} ms", self.timeout.as_millis()),
                after: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_ids() {
        assert_eq!(
            queue_id("2.0.0 Ok: queued as 4Bc1Xy").as_deref(),
            Some("4Bc1Xy")
        );
        assert_eq!(queue_id("OK id=1xyz").as_deref(), Some("OK id=1xyz"));
        assert_eq!(queue_id(" "), None);
    }
}
