//! `run`, `check-config`, `sp-metadata` and `demo`.

use super::assemble;
use crate::proxy;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

pub fn run(path: &Path) -> ExitCode {
    let (cfg, gw) = match assemble(path) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    tracing::info!(public = %cfg.listen_public, admin = %cfg.listen_admin, apps = cfg.apps.len(), "starting ssogate");
    proxy::build_server(&cfg, Arc::new(gw)).run_forever()
}

pub fn check_config(files: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    for f in files {
        match assemble(f) {
            Ok(_) => println!("{}: ok", f.display()),
            Err(e) => {
                failed = true;
                eprintln!("{e}");
            }
        }
    }
    ExitCode::from(u8::from(failed))
}

pub fn sp_metadata(path: &Path, app: &str) -> ExitCode {
    match assemble(path) {
        Ok((_, gw)) => match gw.apps().iter().find(|a| a.name == app) {
            Some(a) => {
                println!("{}", a.sp_metadata());
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("no app named \"{app}\"");
                ExitCode::from(1)
            }
        },
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

pub fn demo(port: u16) -> ExitCode {
    let ports = proxy::demo::DemoPorts {
        public: port,
        admin: port.wrapping_add(10),
        idp: port.wrapping_add(1),
        echo: port.wrapping_add(2),
    };
    let server = match proxy::demo::demo_server(&ports) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(1);
        }
    };
    println!(
        "\nssogate demo (in-memory sessions, development IdP: NOT FOR PRODUCTION)\n\
         \n  open      http://127.0.0.1:{p}/          (sign in, then see the headers the app receives)\n\
         \x20 admin     http://127.0.0.1:{p}/admin/    (only alice is in the admins group)\n\
         \x20 public    http://127.0.0.1:{p}/public/   (no sign-in)\n\
         \x20 metrics   http://127.0.0.1:{a}/metrics\n\
         \n  users     {users}\n\n  Ctrl-C to stop.\n",
        p = ports.public,
        a = ports.admin,
        users = proxy::demo::DEMO_USERS
            .iter()
            .map(|u| u.login)
            .collect::<Vec<_>>()
            .join(", "),
    );
    server.run_forever()
}
