//! The `lynxio` binary: parse flags, set up logging, run the proxy. Everything else lives in
//! the library.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use mimalloc::MiMalloc;

use std::sync::Arc;

use lynxio::config::{CaCommand, Cli, Command, Config, LogFormat, choose_log_filter};
use lynxio::proxy::access::{LogOutput, LogSink};

/// Log lines that may wait for the log writer thread; beyond, new lines are dropped (counted
/// by the writer) rather than stalling a worker. The queue's slots are allocated and written
/// when it is made (32 bytes each, resident from the start: 64 Ki lines were 2 MiB of an idle
/// process); access-log lines travel in batches, one slot per batch.
const LOG_QUEUE_LINES: usize = 16 * 1024;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match cli.command {
        Some(Command::Run(settings)) => settings,
        Some(Command::Ca(args)) => return ca_command(args.command),
        Some(Command::Har(args)) => return har_command(&args.capture),
        None => cli.run,
    };
    let cfg = match Config::from_settings(settings) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("lynxio: {e}");
            return ExitCode::from(2);
        }
    };
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = match choose_log_filter(cfg.log.as_deref(), rust_log.as_deref()) {
        Ok((filter, warning)) => {
            if let Some(warning) = warning {
                eprintln!("lynxio: warning: {warning}");
            }
            filter
        }
        Err(e) => {
            eprintln!("lynxio: invalid --log filter {e}");
            return ExitCode::from(2);
        }
    };
    // Log lines are formatted on the thread that logs and written by a dedicated thread in
    // batches, so a worker never waits on stderr. The guard flushes what is queued on exit.
    let (writer, _log_guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("lynxio-log")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let access = {
        let writer = writer.clone();
        LogOutput {
            format: cfg.log_format,
            make_sink: Arc::new(move || Box::new(writer.clone()) as LogSink),
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match cfg.log_format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
    match lynxio::proxy::run(cfg, access) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "lynxio stopped");
            eprintln!("lynxio: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `lynxio ca export|path`: print the CA certificate PEM (creating the CA if there is none yet,
/// so it can be trusted before the first run) or the certificate's path.
fn ca_command(command: CaCommand) -> ExitCode {
    use lynxio::mitm::ca;
    let (CaCommand::Export(args) | CaCommand::Path(args)) = &command;
    let dir = match args.resolve() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("lynxio: {e}");
            return ExitCode::from(2);
        }
    };
    match command {
        CaCommand::Path(_) => {
            println!("{}", dir.join(ca::CA_CERT_FILE).display());
            ExitCode::SUCCESS
        }
        CaCommand::Export(_) => match ca::load_or_create(&dir) {
            Ok(authority) => {
                if authority.created() {
                    eprintln!("lynxio: created a new CA in {}", authority.dir().display());
                }
                print!("{}", authority.cert_pem());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("lynxio: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `lynxio har CAPTURE`: the capture as HAR 1.2 on stdout; malformed lines are skipped with a
/// warning naming their line number.
fn har_command(path: &std::path::Path) -> ExitCode {
    use std::io::{BufRead, BufReader, Write};
    let input: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        match std::fs::File::open(path) {
            Ok(f) => Box::new(BufReader::new(f)),
            Err(e) => {
                eprintln!("lynxio: cannot open {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
    };
    let mut warn = |line: usize, why: &str| eprintln!("lynxio har: line {line} skipped: {why}");
    let har = match lynxio::observe::har::convert(input, &mut warn) {
        Ok(har) => har,
        Err(e) => {
            eprintln!("lynxio: reading {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let written = serde_json::to_writer_pretty(&mut out, &har)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lynxio: writing HAR: {e}");
            ExitCode::FAILURE
        }
    }
}
