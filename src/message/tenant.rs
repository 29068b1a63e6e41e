//! The Microsoft 365 tenant that sent a message.
//!
//! Takes a message's parsed headers and gives the sending tenant's id and domain, lowercased.

use crate::headers::{self, Headers};

/// The Microsoft 365 tenant that sent the message: its id (`tenant_id`) and domain
/// (`tenant_domain`), lowercased.
///
/// Exchange Online stamps `X-MS-Exchange-CrossTenant-Id` on the way out of the sending tenant
/// and again on the way into a receiving tenant (removing the sender's stamp). A receiving stamp
/// says `AuthAs: Anonymous` with `FromEntityHeader: Internet`; it names the trap's tenant, not the
/// sender's, and is not used. The receiving side's attribution
/// (`...OriginalAttributedTenantConnectingIp: TenantId=...`) names the sender and wins. The
/// domain is `X-OriginatorOrg` (not Outlook.com's `*.templateTenant` placeholder), else the
/// attribution's `Helo=[*.onmicrosoft.com]`, else the tenant's own signing domain
/// `d=*.onmicrosoft.com`.
pub(super) fn sending_tenant(
    h: &Headers<'_>,
    id: &mut String,
    domain: &mut String,
    lossy: &mut Vec<&'static str>,
) {
    let is = |v: Option<&[u8]>, word: &[u8]| {
        v.is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(word))
    };
    let receiving_stamp = is(h.ms_auth_as, b"anonymous") && is(h.ms_from_entity, b"internet");
    let attributed = h.ms_attributed_tenant.and_then(|v| {
        let at = v
            .windows(9)
            .position(|w| w.eq_ignore_ascii_case(b"tenantid="))?;
        let rest = &v[at + 9..];
        let end = rest.iter().position(|&b| b == b';').unwrap_or(rest.len());
        Some(rest[..end].trim_ascii()).filter(|t| !t.is_empty())
    });
    match (attributed, h.cross_tenant_id) {
        (Some(t), _) => super::push_text(t, id, "tenant_id", lossy),
        (None, Some(t)) if !receiving_stamp => super::push_text(t, id, "tenant_id", lossy),
        _ => {}
    }
    id.make_ascii_lowercase();
    if let Some(v) = h.originator_org.filter(|_| !receiving_stamp) {
        super::push_text(v, domain, "tenant_domain", lossy);
        domain.make_ascii_lowercase();
        if domain.ends_with(".templatetenant") || !domain.contains('.') {
            domain.clear();
        }
    }
    if domain.is_empty()
        && let Some(v) = h.ms_attributed_tenant
        && let Some(at) = v.windows(6).position(|w| w.eq_ignore_ascii_case(b"helo=["))
    {
        let rest = &v[at + 6..];
        let helo = &rest[..rest.iter().position(|&b| b == b']').unwrap_or(rest.len())];
        let helo = helo.trim_ascii().to_ascii_lowercase();
        if helo.ends_with(b".onmicrosoft.com") && helo.iter().all(|b| b.is_ascii_graphic()) {
            domain.extend(helo.iter().map(|&b| char::from(b)));
        }
    }
    if domain.is_empty() && !id.is_empty() {
        for sig in &h.dkim_signatures {
            if let Some(d) = headers::dkim_tags(sig).d {
                let d = d.trim_ascii().to_ascii_lowercase();
                if d.ends_with(b".onmicrosoft.com") && d.iter().all(|b| b.is_ascii_graphic()) {
                    domain.extend(d.iter().map(|&b| char::from(b)));
                    break;
                }
            }
        }
    }
}
