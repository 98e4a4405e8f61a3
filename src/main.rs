//! The `lynxio` binary: parse flags, set up logging, run the proxy, or run one of the small
//! subcommands (`ca`, `har`, `check-config`, `completions`, `man`). Everything else lives in
//! the library. Exit statuses: 0 clean, 1 runtime failure, 2 usage or configuration error.

use std::io::IsTerminal;
use std::process::ExitCode;

use mimalloc::MiMalloc;

use std::sync::Arc;

use lynxio::config::{
    CaCommand, CheckConfigArgs, Cli, Command, Config, LogFormat, TrustArgs, TrustStore,
    choose_log_filter,
};
use lynxio::proxy::access::{LogOutput, LogSink};

/// Log lines that may wait for the log writer thread; beyond, new lines are dropped (counted
/// by the writer) rather than stalling a worker. The queue's slots are allocated and written
/// when it is made (32 bytes each, resident from the start: 64 Ki lines were 2 MiB of an idle
/// process); access-log lines travel in batches, one slot per batch.
const LOG_QUEUE_LINES: usize = 16 * 1024;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse_args();
    let settings = match cli.command {
        Some(Command::Run(settings)) => settings,
        Some(Command::Ca(args)) => return ca_command(args.command),
        Some(Command::Har(args)) => return har_command(&args.capture),
        Some(Command::CheckConfig(args)) => return check_config(args),
        Some(Command::Completions(args)) => {
            let mut cmd = lynxio::config::command();
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut cmd, "lynxio", &mut script);
            return write_stdout(&script, "the completion script");
        }
        Some(Command::Man) => return man_page(),
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

/// `lynxio ca export|path|install|uninstall`: print the CA certificate PEM (creating the CA if
/// there is none yet, so it can be trusted before the first run) or the certificate's path, or
/// trust it in the system and browser stores (or stop trusting it).
fn ca_command(command: CaCommand) -> ExitCode {
    use lynxio::mitm::ca;
    let args = match &command {
        CaCommand::Export(args) | CaCommand::Path(args) => args,
        CaCommand::Install(t) | CaCommand::Uninstall(t) => &t.dir,
    };
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
        CaCommand::Install(t) => trust_command(lynxio::install::Mode::Install, &t, dir),
        CaCommand::Uninstall(t) => trust_command(lynxio::install::Mode::Uninstall, &t, dir),
    }
}

/// `lynxio ca install|uninstall`: one line per store, then exit 0 when nothing failed.
fn trust_command(mode: lynxio::install::Mode, t: &TrustArgs, dir: std::path::PathBuf) -> ExitCode {
    use lynxio::install::{self, CaCert, Mode, Options};
    use lynxio::mitm::ca;
    let cert_path = dir.join(ca::CA_CERT_FILE);
    let cert = match mode {
        Mode::Install if t.dry_run && !cert_path.exists() => {
            println!(
                "lynxio: no CA in {} yet: install would create it",
                dir.display()
            );
            CaCert {
                pem: Some(String::new()),
                path: cert_path,
                nickname: Some("lynxio CA (new)".into()),
            }
        }
        Mode::Install => match ca::load_or_create(&dir) {
            Ok(authority) => {
                if authority.created() {
                    println!("lynxio: created a new CA in {}", dir.display());
                }
                CaCert::new(authority.cert_pem().to_owned(), authority.cert_path())
            }
            Err(e) => {
                eprintln!("lynxio: {e}");
                return ExitCode::FAILURE;
            }
        },
        Mode::Uninstall => match std::fs::read_to_string(&cert_path) {
            Ok(pem) => CaCert::new(pem, cert_path),
            Err(_) => CaCert {
                pem: None,
                path: cert_path,
                nickname: None,
            },
        },
    };
    let home = t
        .home
        .clone()
        .or_else(|| std::env::var_os("HOME").map(Into::into));
    let opts = Options {
        mode,
        dry_run: t.dry_run,
        system: t.only != Some(TrustStore::Nss),
        nss: t.only != Some(TrustStore::System),
        system_root: t.system_root.clone(),
        home,
        ca_dir: dir,
    };
    if let Some(name) = &cert.nickname {
        println!("lynxio CA {name:?}: {}", cert.path.display());
    }
    let steps = install::run(&cert, &opts);
    for step in &steps {
        println!("{step}");
    }
    if install::all_done(&steps) {
        ExitCode::SUCCESS
    } else {
        eprintln!("lynxio: some stores were not changed (NOT DONE above)");
        ExitCode::FAILURE
    }
}

/// `lynxio check-config [FILE] [FLAGS]`: what `run` would check before starting (flags, the
/// file, its rules and mock files, credentials, `--upstream-ca` files); the effective settings
/// on stdout and exit 0, or the reason on stderr and exit 1.
fn check_config(args: CheckConfigArgs) -> ExitCode {
    let mut settings = args.run;
    if let Some(file) = args.file {
        if settings.config.is_some() {
            eprintln!("lynxio: give the config file once (FILE or --config)");
            return ExitCode::from(2);
        }
        settings.config = Some(file);
    }
    let source = settings
        .config
        .as_ref()
        .map_or_else(|| "flags".to_owned(), |p| p.display().to_string());
    let checked = Config::from_settings(settings)
        .map_err(|e| e.to_string())
        .and_then(|cfg| {
            lynxio::mitm::upstream::client_config(&cfg.upstream_ca, cfg.insecure_upstream)
                .map(|_| cfg)
                .map_err(|e| e.to_string())
        });
    match checked {
        Ok(cfg) => {
            println!("# lynxio check-config: {source} is valid; effective settings:");
            print!("{}", cfg.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("lynxio: {source} is not valid: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `lynxio man`: the man page from the same definition as `--help`.
fn man_page() -> ExitCode {
    let man = clap_mangen::Man::new(lynxio::config::command());
    let mut page = Vec::new();
    if let Err(e) = man.render(&mut page) {
        eprintln!("lynxio: rendering the man page: {e}");
        return ExitCode::FAILURE;
    }
    write_stdout(&page, "the man page")
}

/// Write generated output to stdout; a closed pipe (`| head`) is an error, not a panic.
fn write_stdout(bytes: &[u8], what: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lynxio: writing {what}: {e}");
            ExitCode::FAILURE
        }
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
