//! A small SMTP server: speaks EHLO/AUTH/MAIL/RCPT/DATA/QUIT, records the conversation, and
//! answers RCPT and the end of DATA as the test scripts it.

use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Clone)]
pub struct Script {
    /// Say nothing at all after accepting the connection.
    pub silent: bool,
    pub rcpt_reply: &'static str,
    pub data_reply: &'static str,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            silent: false,
            rcpt_reply: "250 2.1.5 Ok",
            data_reply: "250 2.0.0 Ok: queued as FAKE42",
        }
    }
}

pub struct SmtpFake {
    pub port: u16,
    /// Every command line the client sent (not the message itself).
    commands: Arc<Mutex<Vec<String>>>,
    /// Every message received with DATA, dot-unstuffed.
    messages: Arc<Mutex<Vec<String>>>,
}

impl SmtpFake {
    pub async fn start(script: Script) -> SmtpFake {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let commands: Arc<Mutex<Vec<String>>> = Arc::default();
        let messages: Arc<Mutex<Vec<String>>> = Arc::default();
        let (c, m) = (commands.clone(), messages.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (script, c, m) = (script.clone(), c.clone(), m.clone());
                tokio::spawn(async move { converse(socket, script, c, m).await });
            }
        });
        SmtpFake {
            port,
            commands,
            messages,
        }
    }

    pub fn commands(&self) -> Vec<String> {
        self.commands.lock().unwrap().clone()
    }

    pub fn messages(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}

async fn converse(
    socket: tokio::net::TcpStream,
    script: Script,
    commands: Arc<Mutex<Vec<String>>>,
    messages: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    if script.silent {
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        return Ok(());
    }
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 fake.test ESMTP\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end().to_owned();
        commands.lock().unwrap().push(command.clone());
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_ascii_uppercase();
        let reply: String = match verb.as_str() {
            "EHLO" => "250-fake.test\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN".into(),
            "AUTH" => "235 2.7.0 Authentication successful".into(),
            "MAIL" => "250 2.1.0 Ok".into(),
            "RCPT" => script.rcpt_reply.into(),
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut message = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    message.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                messages.lock().unwrap().push(message);
                script.data_reply.into()
            }
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            "RSET" | "NOOP" => "250 2.0.0 Ok".into(),
            _ => "502 5.5.2 Command not recognized".into(),
        };
        write.write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}
