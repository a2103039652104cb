//! `mtgate cert --name <dns or ip> … --out-cert cert.pem --out-key key.pem`: a self-signed
//! certificate and its key, for trying a wss gateway out (agents pin it as their CA).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Writes a self-signed certificate for `names` (DNS names or IP addresses; the first is also
/// the subject CN) and its private key. The key file is created readable by its owner only.
pub fn cert(names: Vec<String>, out_cert: PathBuf, out_key: PathBuf) -> ExitCode {
    match generate(&names) {
        Ok((cert, key)) => {
            if let Err(e) =
                write(&out_key, &key, 0o600).and_then(|()| write(&out_cert, &cert, 0o644))
            {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
            println!(
                "wrote {} and {} for {}",
                out_cert.display(),
                out_key.display(),
                names.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot make the certificate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A self-signed certificate for `names` (rcgen's long default validity): (cert PEM, key PEM).
pub fn generate(names: &[String]) -> Result<(String, String), rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    if let Some(first) = names.first() {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, first.as_str());
    }
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_pair_rustls_accepts() {
        use rustls::pki_types::pem::PemObject;
        let (cert, key) = generate(&["gateway.test".into(), "127.0.0.1".into()]).unwrap();
        let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs.clone(), key)
            .unwrap();
        assert_eq!(
            crate::inbound::gateway::upgrade::certificate_identity(certs[0].as_ref()).as_deref(),
            Some("gateway.test")
        );
    }

    #[test]
    fn identity_falls_back_to_the_first_dns_name() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["10.0.0.1".into(), "agent-7.test".into()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(
            crate::inbound::gateway::upgrade::certificate_identity(cert.der()).as_deref(),
            Some("agent-7.test")
        );
        assert_eq!(
            crate::inbound::gateway::upgrade::certificate_identity(b"not a certificate"),
            None
        );
    }
}
