//! Raw `[[component]]` entries as written in the file, and their validation: the domain is
//! normalised like a `[[host]]` domain, must not be a host (the component would shadow local
//! accounts) and may appear once; the secret must be a non-empty string.

use super::Cx;
use crate::ConfigError;
use crate::component::ComponentConfig;
use crate::locate::KeyPath;
use crate::sections::HostConfig;
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawComponent {
    domain: String,
    secret: String,
}

impl Cx<'_> {
    pub(super) fn components(
        &self,
        raw: &[RawComponent],
        hosts: &[HostConfig],
    ) -> Result<Vec<ComponentConfig>, ConfigError> {
        let k = KeyPath::root().key("component");
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::with_capacity(raw.len());
        for (i, c) in raw.iter().enumerate() {
            let ck = k.index(i);
            let dk = ck.key("domain");
            let domain = super::normalize_domain(&c.domain).map_err(|m| self.at(&dk, m))?;
            if hosts.iter().any(|h| h.domain == domain) {
                return Err(self.at(
                    &dk,
                    format!(
                        "\"{domain}\" is a [[host]]: a component needs a domain of its own, e.g. \"service.{domain}\""
                    ),
                ));
            }
            if let Some(first) = seen.insert(domain.clone(), i) {
                return Err(self.at(
                    &dk,
                    format!(
                        "duplicate component \"{domain}\" (already defined by component[{first}])"
                    ),
                ));
            }
            if c.secret.is_empty() {
                return Err(self.at(&ck.key("secret"), "must not be empty"));
            }
            out.push(ComponentConfig {
                domain,
                secret: c.secret.clone(),
            });
        }
        Ok(out)
    }
}
