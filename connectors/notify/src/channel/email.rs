//! Email over SMTP (lettre): plain text, the idempotency key as Message-ID so that mail clients
//! and archives collapse a message sent twice.

use std::time::Duration;

use lettre::{
    message::{header::ContentType, Mailbox},
    transport::smtp::{
        authentication::Credentials,
        client::{Tls, TlsParameters},
    },
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};

use quench_secret::Secret;
use serde::{Deserialize, Serialize};

use super::{Deliver, Notice, Receipt, SendError};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailTarget {
    pub to: Vec<String>,
    pub from: String,
    pub smtp_host: String,
    #[serde(default = "smtp_port")]
    pub smtp_port: u16,
    #[serde(default)]
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    #[serde(default = "email_rate")]
    pub per_minute: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP, for a relay on localhost.
    None,
    /// STARTTLS when the server offers it.
    Opportunistic,
    /// STARTTLS or fail.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

fn smtp_port() -> u16 {
    587
}

fn email_rate() -> u64 {
    60
}

pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Deliver for Email {
    type Target = EmailTarget;

    fn new(_http: &reqwest::Client, target: &EmailTarget, timeout: Duration) -> Result<Self, String> {
        let host = target.smtp_host.as_str();
        let tls = |host: &str| TlsParameters::new(host.into()).map_err(|e| format!("TLS for {host}: {e}"));
        let builder = match target.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpTls::Opportunistic => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).tls(Tls::Opportunistic(tls(host)?))
            }
            SmtpTls::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).tls(Tls::Required(tls(host)?))
            }
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host).tls(Tls::Wrapper(tls(host)?)),
        };
        let mut builder = builder.port(target.smtp_port).timeout(Some(timeout));
        match (&target.username, &target.password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_string()))
            }
            (None, None) => {}
            _ => return Err("set both `username` and `password`, or neither".into()),
        }
        let mailbox = |address: &String| address.parse::<Mailbox>().map_err(|e| format!("`{address}`: {e}"));
        Ok(Self {
            transport: builder.build(),
            from: mailbox(&target.from)?,
            to: target.to.iter().map(mailbox).collect::<Result<_, _>>()?,
        })
    }

    fn per_minute(target: &EmailTarget) -> u64 {
        target.per_minute
    }

    fn check(target: &EmailTarget) -> Result<(), (String, String)> {
        if target.to.is_empty() || target.from.is_empty() || target.smtp_host.is_empty() {
            return Err((String::new(), "needs `to`, `from` and `smtp_host`".into()));
        }
        Ok(())
    }

    async fn send(&self, notice: &Notice<'_>) -> Result<Receipt, SendError> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(notice.message.title.clone())
            .message_id(Some(message_id(notice.key)))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let message = builder
            .body(notice.message.body.clone())
            .map_err(|e| SendError::Permanent { message: format!("building the email: {e}"), status: 0 })?;
        match self.transport.send(message).await {
            Ok(response) => Ok(Receipt { status: u16::from(response.code()), thread: None }),
            Err(e) => {
                let status = e.status().map_or(0, u16::from);
                let message = format!("SMTP: {e}");
                Err(if e.is_permanent() {
                    SendError::Permanent { message, status }
                } else {
                    SendError::Transient { message, status, retry_after: None }
                })
            }
        }
    }
}

/// `<key@quench>` with the characters a Message-ID may not hold replaced.
fn message_id(key: &str) -> String {
    let local: String =
        key.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '.' }).collect();
    format!("<{}@quench>", local.trim_matches('.'))
}
