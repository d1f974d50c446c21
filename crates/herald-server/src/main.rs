use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = herald_server::cli::Cli::parse();
    match herald_server::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("herald: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}
