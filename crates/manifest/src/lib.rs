//! Query string forwarding: rewriting the links inside HLS playlists and DASH manifests so that
//! they carry the playlist's token (Gcore's "Query String Forwarding"), or a token of their own
//! directory (Tollgate's `sign_each_directory`).
//!
//! The rewrite works on the stored (un-rewritten) body for every request, in one pass, copying
//! everything it does not change byte for byte: a manifest without links comes back identical.
//! Only links whose file type is listed are touched, only relative links or absolute ones to the
//! resource's own hostnames (a token is never handed to a third-party host), and never a link
//! that already carries one of the forwarded parameters.

use std::collections::HashMap;

use tollgate_token::sign::digest;
use tollgate_token::target::{directory, normalise_path};
use tollgate_token::url::{split_authority, split_http_url};
use tollgate_token::{Key, RemoteAddr, Token};

/// What kind of manifest a file is, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `.m3u8` / `.m3u`: line-based, URIs on their own lines and in `URI="..."` attributes.
    Hls,
    /// `.mpd`: XML, URIs in `media`, `initialization`, `sourceURL` attributes and `<BaseURL>`.
    Dash,
}

impl Kind {
    /// The kind for a lower-case extension.
    pub fn of_extension(ext: &str) -> Option<Kind> {
        match ext {
            "m3u8" | "m3u" => Some(Kind::Hls),
            "mpd" => Some(Kind::Dash),
            _ => None,
        }
    }
}

/// The extension of the last segment of `path` (before any `?` or `#`), lower-cased.
pub fn extension(path: &[u8]) -> Option<String> {
    written_extension(path).map(|e| String::from_utf8_lossy(e).to_ascii_lowercase())
}

/// The extension of the last segment of `path` (before any `?` or `#`) as written, in any
/// case: what [`extension`] lower-cases, borrowed, for comparing without allocating.
pub fn written_extension(path: &[u8]) -> Option<&[u8]> {
    let end = path
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    let path = &path[..end];
    let name = &path[path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1)..];
    let dot = name.iter().rposition(|&b| b == b'.')?;
    let ext = &name[dot + 1..];
    (!ext.is_empty() && ext.len() <= 16).then_some(ext)
}

/// What a forwarded link gets.
pub enum Addition<'a> {
    /// These parameters (`md5=...&expires=...`), copied from the playlist request.
    Copy(&'a [u8]),
    /// A token for the link's own directory, for directories under `scope`.
    SignEachDirectory {
        /// The signing key.
        key: &'a Key,
        /// The playlist request's `expires`, as sent.
        expires: &'a [u8],
        /// The client address, for resources that bind tokens to it.
        ip: Option<RemoteAddr>,
        /// Only directories under this one (the playlist's, ending in `/`, decoded as nginx's
        /// `$uri` is) are signed.
        scope: &'a [u8],
    },
}

/// One rewrite's settings.
pub struct Rewrite<'a> {
    /// Extensions (lower case) of the links that get parameters.
    pub to_types: &'a [String],
    /// Names of the parameters added (a link carrying one already is left alone).
    pub param_names: &'a [&'a [u8]],
    /// What they get.
    pub addition: Addition<'a>,
    /// The playlist's directory (`$uri` up to its last `/`), to resolve relative links, as a
    /// request would carry it: percent-encoded so that nginx decodes it back to `$uri`'s (a
    /// `%` left decoded here would be decoded a second time). The edge encodes it with
    /// `tollgate_token::sign::encode_path`.
    pub base_dir: &'a [u8],
    /// Whether a host (as written in an absolute link, port included) is the resource's own.
    pub own_host: &'a dyn Fn(&[u8]) -> bool,
}

/// Rewrites `body` of `kind`, whole.
pub fn rewrite(kind: Kind, body: &[u8], rw: &Rewrite<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 4 + 64);
    let mut r = Rewriter::new(kind);
    r.push(body, rw, &mut out);
    r.finish(rw, &mut out);
    out
}

/// A rewrite fed in pieces, so that a manifest goes out as it is rewritten and a viewer holds
/// a piece of it, not a rewritten copy (which is several times the manifest: every short
/// segment name gains a token). The pieces are cut where the whole-body rewrite has no state
/// to carry: after a line's end (HLS); before a tag, outside a `<BaseURL>` element, whose text
/// runs to the next `<` of any kind (DASH). Each byte is scanned once, however the input is
/// pieced; what is held between pieces is the part after the last cut, at most
/// [`MAX_PENDING`] bytes.
pub struct Rewriter {
    kind: Kind,
    tokens: Tokens,
    /// Input not rewritten yet.
    pending: Vec<u8>,
    /// How much of `pending` has been scanned for cuts.
    scanned: usize,
    /// The last place `pending` may be cut, if any.
    cut: Option<usize>,
    /// DASH: inside a `<BaseURL>` element (no cut until its end tag).
    in_base: bool,
}

/// The most input a [`Rewriter`] holds back waiting for a place to cut. Past it (a line of a
/// quarter of a megabyte: no real manifest has one), it is rewritten as if it ended there.
pub const MAX_PENDING: usize = 256 << 10;

/// Enough of a tag to tell `<BaseURL`, `</BaseURL` and the rest apart.
const TAG_PREFIX: usize = b"</BaseURL".len() + 1;

impl Rewriter {
    /// A rewriter for a manifest of `kind`.
    pub fn new(kind: Kind) -> Rewriter {
        Rewriter {
            kind,
            tokens: HashMap::new(),
            pending: Vec::new(),
            scanned: 0,
            cut: None,
            in_base: false,
        }
    }

    /// Rewrites what `input` completes into `out`, keeping the rest for the next piece.
    pub fn push(&mut self, input: &[u8], rw: &Rewrite<'_>, out: &mut Vec<u8>) {
        self.pending.extend_from_slice(input);
        self.scan();
        if let Some(at) = self.cut.take() {
            let held = std::mem::take(&mut self.pending);
            self.run(&held[..at], rw, out);
            self.pending.extend_from_slice(&held[at..]);
            self.scanned -= at;
        }
        if self.pending.len() > MAX_PENDING {
            let held = std::mem::take(&mut self.pending);
            self.run(&held, rw, out);
            self.scanned = 0;
            self.in_base = false;
        }
    }

    /// Rewrites whatever is left: the manifest has ended.
    pub fn finish(&mut self, rw: &Rewrite<'_>, out: &mut Vec<u8>) {
        let held = std::mem::take(&mut self.pending);
        self.run(&held, rw, out);
        (self.scanned, self.cut, self.in_base) = (0, None, false);
    }

    /// Scans the bytes of `pending` not scanned yet, moving `cut` to the last place found.
    fn scan(&mut self) {
        let buf = &self.pending;
        match self.kind {
            Kind::Hls => {
                if let Some(i) = memchr::memrchr(b'\n', &buf[self.scanned..]) {
                    self.cut = Some(self.scanned + i + 1);
                }
                self.scanned = buf.len();
            }
            Kind::Dash => {
                let mut at = self.scanned;
                while let Some(rel) = memchr::memchr(b'<', &buf[at..]) {
                    let i = at + rel;
                    let tag = &buf[i..];
                    if tag.len() < TAG_PREFIX {
                        // Too short to tell: scanned again with the next piece.
                        self.scanned = i;
                        return;
                    }
                    if self.in_base {
                        self.in_base = !tag.starts_with(b"</BaseURL");
                    } else {
                        if i > 0 {
                            self.cut = Some(i);
                        }
                        if tag.starts_with(b"<BaseURL")
                            && (tag[8] == b'>' || tag[8].is_ascii_whitespace())
                        {
                            match memchr::memchr(b'>', tag) {
                                // `<BaseURL/>` has no text.
                                Some(end) => self.in_base = tag[end - 1] != b'/',
                                None => {
                                    self.scanned = i;
                                    return;
                                }
                            }
                        }
                    }
                    at = i + 1;
                }
                self.scanned = buf.len();
            }
        }
    }

    fn run(&mut self, piece: &[u8], rw: &Rewrite<'_>, out: &mut Vec<u8>) {
        if piece.is_empty() {
            return;
        }
        match self.kind {
            Kind::Hls => rewrite_hls(piece, rw, &mut self.tokens, out),
            Kind::Dash => rewrite_dash(piece, rw, &mut self.tokens, out),
        }
    }
}

type Tokens = HashMap<Vec<u8>, Option<Vec<u8>>>;

fn rewrite_hls(body: &[u8], rw: &Rewrite<'_>, tokens: &mut Tokens, out: &mut Vec<u8>) {
    for line in body.split_inclusive(|&b| b == b'\n') {
        // The line without its end (`\n` or `\r\n`) and trailing blanks.
        let content_end = line
            .iter()
            .rposition(|&b| !matches!(b, b'\n' | b'\r' | b' ' | b'\t'))
            .map_or(0, |i| i + 1);
        let content = &line[..content_end];
        if content.is_empty() {
            out.extend_from_slice(line);
        } else if content[0] == b'#' {
            match find(content, b"URI=\"") {
                Some(at) => {
                    let start = at + 5;
                    let len = content[start..]
                        .iter()
                        .position(|&b| b == b'"')
                        .unwrap_or(content.len() - start);
                    out.extend_from_slice(&line[..start]);
                    write_link(&content[start..start + len], rw, tokens, false, out);
                    out.extend_from_slice(&line[start + len..]);
                }
                None => out.extend_from_slice(line),
            }
        } else {
            let lead = content
                .iter()
                .position(|&b| b != b' ' && b != b'\t')
                .unwrap_or(0);
            out.extend_from_slice(&line[..lead]);
            write_link(&content[lead..], rw, tokens, false, out);
            out.extend_from_slice(&line[content_end..]);
        }
    }
}

const DASH_ATTRIBUTES: [&[u8]; 3] = [b"media=\"", b"initialization=\"", b"sourceURL=\""];

fn rewrite_dash(body: &[u8], rw: &Rewrite<'_>, tokens: &mut Tokens, out: &mut Vec<u8>) {
    let mut i = 0;
    while let Some(rel) = memchr::memchr2(b'=', b'>', &body[i..]) {
        let at = i + rel;
        if body[at] == b'=' {
            // An attribute we rewrite: whitespace, its name, `="`.
            let attr = DASH_ATTRIBUTES.iter().find(|a| {
                let name_len = a.len() - 2;
                at > name_len
                    && body[at - name_len..at] == a[..name_len]
                    && body[at - name_len - 1].is_ascii_whitespace()
                    && body.get(at + 1) == Some(&b'"')
            });
            if attr.is_some() {
                let start = at + 2;
                if let Some(len) = body[start..].iter().position(|&b| b == b'"') {
                    out.extend_from_slice(&body[i..start]);
                    write_link(&body[start..start + len], rw, tokens, true, out);
                    i = start + len;
                    continue;
                }
            }
            out.extend_from_slice(&body[i..=at]);
            i = at + 1;
        } else {
            // The end of a tag: `<BaseURL ...>` is followed by a link.
            out.extend_from_slice(&body[i..=at]);
            i = at + 1;
            let tag_start = body[..at].iter().rposition(|&b| b == b'<');
            let is_base = tag_start.is_some_and(|s| {
                body[s + 1..at].starts_with(b"BaseURL")
                    && body
                        .get(s + 8)
                        .is_some_and(|&b| b == b'>' || b.is_ascii_whitespace())
            });
            if is_base && body[at - 1] != b'/' {
                if let Some(len) = body[i..].iter().position(|&b| b == b'<') {
                    let text = &body[i..i + len];
                    let trimmed_start = text
                        .iter()
                        .position(|b| !b.is_ascii_whitespace())
                        .unwrap_or(text.len());
                    let trimmed_end = text
                        .iter()
                        .rposition(|b| !b.is_ascii_whitespace())
                        .map_or(trimmed_start, |e| e + 1);
                    out.extend_from_slice(&text[..trimmed_start]);
                    write_link(&text[trimmed_start..trimmed_end], rw, tokens, true, out);
                    out.extend_from_slice(&text[trimmed_end..]);
                    i += len;
                }
            }
        }
    }
    out.extend_from_slice(&body[i..]);
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// Writes `link`, with the addition when it qualifies. `xml`: `&` is written `&amp;`.
fn write_link(link: &[u8], rw: &Rewrite<'_>, tokens: &mut Tokens, xml: bool, out: &mut Vec<u8>) {
    match addition_for(link, rw, tokens) {
        None => out.extend_from_slice(link),
        Some(add) => {
            let frag = link.iter().position(|&b| b == b'#').unwrap_or(link.len());
            let (before, fragment) = link.split_at(frag);
            out.extend_from_slice(before);
            let has_query = before.contains(&b'?');
            match (has_query, before.last()) {
                (true, Some(b'?' | b'&')) => {}
                (true, _) => out.extend_from_slice(if xml { b"&amp;" } else { b"&" }),
                (false, _) => out.push(b'?'),
            }
            if xml {
                for part in add.split(|&b| b == b'&').enumerate() {
                    if part.0 > 0 {
                        out.extend_from_slice(b"&amp;");
                    }
                    out.extend_from_slice(part.1);
                }
            } else {
                out.extend_from_slice(add);
            }
            out.extend_from_slice(fragment);
        }
    }
}

/// The parameters `link` gets, or `None` when it is left as it is. No allocation per link:
/// the extension is compared where it is written, and tokens are computed once per directory
/// as written in the manifest.
fn addition_for<'m>(link: &[u8], rw: &'m Rewrite<'_>, tokens: &'m mut Tokens) -> Option<&'m [u8]> {
    if link.is_empty() || link.starts_with(b"data:") {
        return None;
    }
    // The path part, made absolute.
    let network = split_http_url(link).or_else(|| link.strip_prefix(b"//").map(split_authority));
    let (path, absolute) = match network {
        Some((authority, path)) => {
            // A link with user information (`own.host@other.host`) goes to the host after the
            // `@`: never the resource's own, so never given a token.
            if authority.contains(&b'@') || !(rw.own_host)(authority) {
                return None;
            }
            (path, true)
        }
        None => (link, link.starts_with(b"/")),
    };
    let end = path
        .iter()
        .position(|&b| b == b'?' || b == b'#')
        .unwrap_or(path.len());
    let ext = written_extension(&path[..end])?;
    // `to_types` are lower case (the model lower-cases them).
    if !rw
        .to_types
        .iter()
        .any(|t| t.as_bytes().eq_ignore_ascii_case(ext))
    {
        return None;
    }
    let query = path[end..].strip_prefix(b"?").unwrap_or(b"");
    let query = &query[..query.iter().position(|&b| b == b'#').unwrap_or(query.len())];
    let carries = tollgate_token::query::params(query)
        // In XML the separator is written `&amp;`.
        .map(|p| p.name.strip_prefix(b"amp;").unwrap_or(p.name))
        .any(|n| rw.param_names.contains(&n));
    if carries {
        return None;
    }
    match &rw.addition {
        Addition::Copy(params) => Some(params),
        Addition::SignEachDirectory {
            key,
            expires,
            ip,
            scope,
        } => {
            // Keyed by the directory as written, so the segments of one directory cost one
            // lookup each and one MD5 in all. An absolute path (whatever its host: only the
            // resource's own get here) starts with `/` and a relative one never does, so the
            // two cannot share a key. A file name with an escape may decode to a `/` and so
            // be in a directory of its own: such a link is keyed by its whole path (which
            // ends in the name, where a directory ends in `/`).
            let path = &path[..end];
            let dir_end = path.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
            let memo_key = if path[dir_end..].contains(&b'%') {
                path
            } else {
                &path[..dir_end]
            };
            if !tokens.contains_key(memo_key) {
                let base_dir: &[u8] = if absolute { b"" } else { rw.base_dir };
                let requested = requested_path(base_dir, path);
                // A path nginx refuses (a bad escape, `%00`, `..` above the root once decoded)
                // is a 400 at the edge whatever its token: none is given.
                let params = normalise_path(&requested).ok().and_then(|uri| {
                    let dir = directory(&uri);
                    dir.starts_with(scope).then(|| {
                        let d = digest(expires, dir, ip.as_ref(), key);
                        let mut p = b"md5=".to_vec();
                        p.extend_from_slice(Token::from_digest(&d).as_str().as_bytes());
                        p.extend_from_slice(b"&expires=");
                        p.extend_from_slice(expires);
                        p
                    })
                });
                tokens.insert(memo_key.to_vec(), params);
            }
            tokens.get(memo_key).and_then(|p| p.as_deref())
        }
    }
}

/// The path a player requests for a link whose path (before `?` and `#`) is `path`, under
/// `base_dir` (empty for an absolute path). A player resolves a link before requesting it, as
/// every URL library does (RFC 3986, section 5.2; the WHATWG URL Standard in browsers): `.` and
/// `..` segments go, `%2e` counting as a dot as browsers count it, and a `..` at the root stays
/// there; empty segments stay (`a//..` is `a/`, where nginx, merging slashes first, would make
/// it the parent of `a`); tabs, CRs and LFs are dropped and the bytes a request line cannot
/// carry are percent-encoded. Nothing is decoded: the edge does that, as nginx does, with
/// [`normalise_path`], which the caller applies to the result.
fn requested_path(base_dir: &[u8], path: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(base_dir.len() + path.len());
    full.extend_from_slice(base_dir);
    full.extend(
        path.iter()
            .filter(|&&b| !matches!(b, b'\t' | b'\n' | b'\r')),
    );
    let is_dot = |s: &[u8]| s == b"." || s.eq_ignore_ascii_case(b"%2e");
    let is_dot_dot = |s: &[u8]| {
        [&b".."[..], b".%2e", b"%2e.", b"%2e%2e"]
            .iter()
            .any(|d| s.eq_ignore_ascii_case(d))
    };
    let rest = full.strip_prefix(b"/").unwrap_or(&full);
    let mut segments: Vec<&[u8]> = Vec::new();
    let mut parts = rest.split(|&b| b == b'/').peekable();
    while let Some(seg) = parts.next() {
        let last = parts.peek().is_none();
        if is_dot_dot(seg) {
            segments.pop();
        } else if !is_dot(seg) {
            segments.push(seg);
            continue;
        }
        // A path ending in a dot segment ends in `/`: `a/b/..` is `a/`.
        if last {
            segments.push(b"");
        }
    }
    let mut out = Vec::with_capacity(full.len() + 2);
    for seg in segments {
        out.push(b'/');
        for &b in seg {
            if b <= 0x20 || b == 0x7f {
                out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            } else {
                out.push(b);
            }
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests {
    use super::*;

    fn types() -> Vec<String> {
        ["ts", "m4s", "mp4", "m3u8", "key", "vtt", "aac"]
            .map(String::from)
            .to_vec()
    }

    fn copy(kind: Kind, body: &str) -> String {
        let t = types();
        let rw = Rewrite {
            to_types: &t,
            param_names: &[b"md5", b"expires"],
            addition: Addition::Copy(b"md5=TOK&expires=99"),
            base_dir: b"/v/",
            own_host: &|h| h == b"cdn.example.com",
        };
        String::from_utf8(rewrite(kind, body.as_bytes(), &rw)).unwrap()
    }

    #[test]
    fn hls_media_playlist() {
        let body = "#EXTM3U\r\n#EXT-X-VERSION:7\r\n#EXT-X-KEY:METHOD=AES-128,URI=\"enc.key\",IV=0x1\r\n\
                    #EXT-X-MAP:URI=\"init.mp4\"\r\n#EXTINF:4.0,\r\nseg0.m4s\r\n#EXTINF:4.0,\r\n  seg1.m4s?x=1#t  \r\n\
                    https://cdn.example.com/v/seg2.m4s\r\nhttps://other.example.net/seg3.m4s\r\n\
                    seg4.m4s?md5=own&expires=1\r\npicture.jpg\r\n#EXT-X-ENDLIST";
        let want = "#EXTM3U\r\n#EXT-X-VERSION:7\r\n#EXT-X-KEY:METHOD=AES-128,URI=\"enc.key?md5=TOK&expires=99\",IV=0x1\r\n\
                    #EXT-X-MAP:URI=\"init.mp4?md5=TOK&expires=99\"\r\n#EXTINF:4.0,\r\nseg0.m4s?md5=TOK&expires=99\r\n#EXTINF:4.0,\r\n  seg1.m4s?x=1&md5=TOK&expires=99#t  \r\n\
                    https://cdn.example.com/v/seg2.m4s?md5=TOK&expires=99\r\nhttps://other.example.net/seg3.m4s\r\n\
                    seg4.m4s?md5=own&expires=1\r\npicture.jpg\r\n#EXT-X-ENDLIST";
        assert_eq!(copy(Kind::Hls, body), want);
    }

    #[test]
    fn a_link_with_user_information_gets_no_token() {
        // The edge's own-host check, which cuts a port off at the first `:`.
        let t = types();
        let rw = Rewrite {
            to_types: &t,
            param_names: &[b"md5", b"expires"],
            addition: Addition::Copy(b"md5=TOK&expires=99"),
            base_dir: b"/v/",
            own_host: &|h| h.split(|&b| b == b':').next() == Some(b"cdn.example.com"),
        };
        for link in [
            "http://cdn.example.com:80@evil.example/x.ts",
            "https://cdn.example.com:@evil.example/x.ts",
            "//cdn.example.com:x@evil.example/x.ts",
        ] {
            let body = format!("#EXTM3U\n{link}\n");
            assert_eq!(
                rewrite(Kind::Hls, body.as_bytes(), &rw),
                body.as_bytes(),
                "{link}"
            );
        }
        assert_eq!(
            copy(Kind::Hls, "http://cdn.example.com/x.ts\n"),
            "http://cdn.example.com/x.ts?md5=TOK&expires=99\n"
        );
    }

    #[test]
    fn hls_master_playlist() {
        let body =
            "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"audio/en.m3u8\"\n\
                    #EXT-X-STREAM-INF:BANDWIDTH=800000,AUDIO=\"a\"\n360p/index.m3u8\n\
                    #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=90000,URI=\"360p/iframes.m3u8\"\n";
        let got = copy(Kind::Hls, body);
        assert_eq!(got.matches("?md5=TOK&expires=99").count(), 3, "{got}");
        assert!(got.ends_with("iframes.m3u8?md5=TOK&expires=99\"\n"));
    }

    #[test]
    fn dash_manifest() {
        let body = r#"<?xml version="1.0"?><MPD><Period><BaseURL>https://cdn.example.com/v/</BaseURL>
<AdaptationSet><SegmentTemplate timescale="1000" media="chunk-$RepresentationID$-$Number%05d$.m4s" initialization="init-$RepresentationID$.m4s"/>
<Representation id="0"><BaseURL> video.mp4 </BaseURL><SegmentList><Initialization sourceURL="i.mp4?a=b"/><SegmentURL media="s1.m4s"/></SegmentList></Representation>
</AdaptationSet></Period></MPD>"#;
        let got = copy(Kind::Dash, body);
        assert!(
            got.contains(
                r#"media="chunk-$RepresentationID$-$Number%05d$.m4s?md5=TOK&amp;expires=99""#
            ),
            "{got}"
        );
        assert!(
            got.contains(r#"initialization="init-$RepresentationID$.m4s?md5=TOK&amp;expires=99""#)
        );
        assert!(
            got.contains(r#"sourceURL="i.mp4?a=b&amp;md5=TOK&amp;expires=99""#),
            "{got}"
        );
        assert!(got.contains(r#"<SegmentURL media="s1.m4s?md5=TOK&amp;expires=99"/>"#));
        assert!(
            got.contains("<BaseURL> video.mp4?md5=TOK&amp;expires=99 </BaseURL>"),
            "{got}"
        );
        assert!(
            got.contains("<BaseURL>https://cdn.example.com/v/</BaseURL>"),
            "a directory has no file type"
        );
        assert!(got.contains(r#"timescale="1000""#));
    }

    #[test]
    fn sign_each_directory_signs_per_directory_within_scope() {
        let key = Key::new("secret_key").unwrap();
        let body = b"#EXTM3U\n360p/index.m3u8\n720p/index.m3u8\n./360p/../720p/seg.ts\n../escape/x.ts\nmy%20dir/a.ts\n";
        let got = sign_each(b"2147483647", b"/v/", b"/v/", &|_| false, |rw| {
            String::from_utf8(rewrite(Kind::Hls, body, rw)).unwrap()
        });
        let line = |n: usize| got.lines().nth(n).unwrap().to_owned();
        let token_for = |dir: &str| {
            tollgate_token::sign(&key, 2147483647, dir.as_bytes(), None)
                .unwrap()
                .as_str()
                .to_owned()
        };
        assert_eq!(
            line(1),
            format!(
                "360p/index.m3u8?md5={}&expires=2147483647",
                token_for("/v/360p/")
            )
        );
        assert_eq!(
            line(2),
            format!(
                "720p/index.m3u8?md5={}&expires=2147483647",
                token_for("/v/720p/")
            )
        );
        assert_eq!(
            line(3),
            format!(
                "./360p/../720p/seg.ts?md5={}&expires=2147483647",
                token_for("/v/720p/")
            )
        );
        assert_eq!(
            line(4),
            "../escape/x.ts",
            "outside the playlist's directory: not signed"
        );
        assert_eq!(
            line(5),
            format!(
                "my%20dir/a.ts?md5={}&expires=2147483647",
                token_for("/v/my dir/")
            )
        );
    }

    #[test]
    fn extensions() {
        assert_eq!(extension(b"/a/b.M3U8?x=1").as_deref(), Some("m3u8"));
        assert_eq!(extension(b"/a.b/c").as_deref(), None);
        assert_eq!(extension(b"seg.ts#f").as_deref(), Some("ts"));
        assert_eq!(Kind::of_extension("mpd"), Some(Kind::Dash));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body: Vec<u8>, dash: bool) {
            let kind = if dash { Kind::Dash } else { Kind::Hls };
            let _ = copy_bytes(kind, &body);
        }

        #[test]
        fn manifests_without_links_come_back_identical(lines in proptest::collection::vec("#[A-Z0-9:=,.\\- ]{0,40}|[ \t]*", 0..30), crlf: bool) {
            let body = lines.join(if crlf { "\r\n" } else { "\n" });
            proptest::prop_assert_eq!(copy(Kind::Hls, &body), body);
        }

        #[test]
        fn xml_without_link_attributes_comes_back_identical(body in "[a-zA-Z0-9<>/=\" .\n]{0,300}") {
            proptest::prop_assume!(!body.contains("BaseURL") && !body.contains("media=") && !body.contains("initialization=") && !body.contains("sourceURL="));
            proptest::prop_assert_eq!(copy(Kind::Dash, &body), body);
        }
    }

    /// The settings of the signing tests: every host the resource's, links signed per
    /// directory under `/`.
    fn signing<R>(f: impl FnOnce(&Rewrite<'_>) -> R) -> R {
        sign_each(b"1", b"/", b"/v/", &|_| true, f)
    }

    /// `f` with a rewrite that signs each directory within `scope` with `secret_key` at
    /// `expires`, links resolved from `base_dir`.
    fn sign_each<R>(
        expires: &[u8],
        scope: &[u8],
        base_dir: &[u8],
        own_host: &dyn Fn(&[u8]) -> bool,
        f: impl FnOnce(&Rewrite<'_>) -> R,
    ) -> R {
        let t = types();
        let key = Key::new("secret_key").unwrap();
        f(&Rewrite {
            to_types: &t,
            param_names: &[b"md5", b"expires"],
            addition: Addition::SignEachDirectory {
                key: &key,
                expires,
                ip: None,
                scope,
            },
            base_dir,
            own_host,
        })
    }

    fn pieces(kind: Kind, body: &[u8], cuts: &[usize]) -> Vec<u8> {
        signing(|rw| pieces_with(kind, body, cuts, rw))
    }

    fn pieces_with(kind: Kind, body: &[u8], cuts: &[usize], rw: &Rewrite<'_>) -> Vec<u8> {
        let (mut r, mut out, mut at) = (Rewriter::new(kind), Vec::new(), 0);
        for c in cuts.iter().cycle() {
            if at >= body.len() {
                break;
            }
            let end = (at + c).min(body.len());
            r.push(&body[at..end], rw, &mut out);
            at = end;
        }
        r.finish(rw, &mut out);
        out
    }

    #[test]
    fn a_comment_inside_base_url_is_not_a_place_to_cut() {
        let body =
            b"<MPD><BaseURL>v.mp4<!--c--></BaseURL><BaseURL>w.mp4<![CDATA[x]]></BaseURL></MPD>";
        let whole = copy_bytes(Kind::Dash, body);
        assert!(String::from_utf8_lossy(&whole).contains("v.mp4?md5="));
        for first in 1..body.len() {
            assert_eq!(
                pieces(Kind::Dash, body, &[first, body.len()]),
                whole,
                "cut at {first}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn rewriting_in_pieces_is_rewriting_whole(
            hls in proptest::collection::vec(proptest::sample::select(vec![
                "#EXTM3U\n", "#EXTINF:4,\n", "seg1.ts\n", "a/b.ts?x=1\r\n", "../c/d.ts\n",
                "#EXT-X-KEY:METHOD=AES-128,URI=\"k/key.ts\"\n", "http://cdn.example.com/v.ts\n",
                "http://other.example/v.ts\n", "\n", "  x.ts  \n", "y.ts",
            ]), 0..40),
            dash in proptest::collection::vec(proptest::sample::select(vec![
                "<MPD>", "<BaseURL>", "v/", "http://cdn.example.com/b/", "</BaseURL>", "\n", " ",
                "<SegmentTemplate media=\"s$Number$.mp4\" initialization=\"i.mp4\"/>",
                "<SegmentURL media=\"x/1.mp4?a=1\"/>", "<BaseURL/>", "</MPD>",
                "<!--c-->", "<![CDATA[x]]>", "<BaseURL a=\"1\">", "<Base>",
            ]), 0..40),
            cuts in proptest::collection::vec(1usize..48, 1..12),
        ) {
            let hls = hls.concat();
            let dash = dash.concat();
            proptest::prop_assert_eq!(pieces(Kind::Hls, hls.as_bytes(), &cuts), copy_bytes(Kind::Hls, hls.as_bytes()));
            proptest::prop_assert_eq!(pieces(Kind::Dash, dash.as_bytes(), &cuts), copy_bytes(Kind::Dash, dash.as_bytes()));
        }

        #[test]
        fn what_a_rewriter_holds_back_is_bounded(len in 0usize..(3 * MAX_PENDING), newline: bool) {
            let t = types();
            let rw = Rewrite { to_types: &t, param_names: &[b"md5"], addition: Addition::Copy(b"md5=x"), base_dir: b"/", own_host: &|_| true };
            let mut r = Rewriter::new(if newline { Kind::Hls } else { Kind::Dash });
            let mut out = Vec::new();
            for _ in 0..(len / 4096 + 1) {
                r.push(&[b'a'; 4096], &rw, &mut out);
                proptest::prop_assert!(r.pending.len() <= MAX_PENDING && r.scanned <= r.pending.len());
            }
        }
    }

    fn copy_bytes(kind: Kind, body: &[u8]) -> Vec<u8> {
        signing(|rw| rewrite(kind, body, rw))
    }

    /// The token of the `signing` settings for directory `dir`.
    fn signing_token(dir: &str) -> String {
        let key = Key::new("secret_key").unwrap();
        tollgate_token::sign(&key, 1, dir.as_bytes(), None)
            .unwrap()
            .as_str()
            .to_owned()
    }

    #[test]
    fn links_are_signed_over_the_directory_the_edge_checks() {
        // Links under the playlist's directory `/v/`, and the directory each is signed for:
        // the one the edge computes, as nginx does, from the request a player makes for it.
        let signed: &[(&str, Option<&str>)] = &[
            ("c/x.ts", Some("/v/c/")),
            // nginx merges slashes, decoded ones too.
            ("a//b/index.m3u8", Some("/v/a/b/")),
            ("d/%2F/e/x.ts", Some("/v/d/e/")),
            ("%2F%2Fx/y.ts", Some("/v/x/")),
            ("/a//b/x.ts", Some("/a/b/")),
            ("https://cdn.example.com//a/./b/x.ts", Some("/a/b/")),
            // The player resolves dots before nginx merges slashes: `a//..` is `a/`.
            ("a//../x.ts", Some("/v/a/")),
            // `%2e` is a dot to browsers, and nginx decodes it to one anyway.
            ("a/%2e%2E/x.ts", Some("/v/")),
            ("a/.%2e/x.ts", Some("/v/")),
            ("a/%2e/x.ts", Some("/v/a/")),
            // An escaped `/` is one segment to the player, and decoded by nginx.
            ("a/b%2F..%2Fc/x.ts", Some("/v/a/c/")),
            ("a%252F/x.ts", Some("/v/a%2F/")),
            // `;` is an ordinary character to both: no path parameters.
            ("a;b/x.ts", Some("/v/a;b/")),
            ("..;/x.ts", Some("/v/..;/")),
            // A player stops climbing at the root (nginx would refuse `/v/../../..`, but it
            // never sees it).
            ("../../../x.ts", Some("/")),
            // A space is sent as `%20`, which nginx decodes.
            ("my dir/a.ts", Some("/v/my dir/")),
            ("caf\u{e9}/a.ts", Some("/v/caf\u{e9}/")),
            // Requests nginx answers with a 400, whatever their token: none is given.
            ("a%2F..%2F..%2F..%2Fx/y.ts", None),
            ("a%zz/x.ts", None),
            ("a%00/x.ts", None),
        ];
        for &(link, dir) in signed {
            let body = format!("#EXTM3U\n{link}\n");
            let got = String::from_utf8(copy_bytes(Kind::Hls, body.as_bytes())).unwrap();
            let want = match dir {
                Some(d) => format!("#EXTM3U\n{link}?md5={}&expires=1\n", signing_token(d)),
                None => body.clone(),
            };
            assert_eq!(got, want, "{link} signed for {dir:?}");
        }
    }

    #[test]
    fn a_file_name_decoding_to_a_slash_does_not_share_its_directory_token() {
        let got = copy_bytes(Kind::Hls, b"h%2Fi.ts\ntop.ts\n");
        let want = format!(
            "h%2Fi.ts?md5={}&expires=1\ntop.ts?md5={}&expires=1\n",
            signing_token("/v/h/"),
            signing_token("/v/")
        );
        assert_eq!(String::from_utf8(got).unwrap(), want);
    }

    proptest::proptest! {
        /// What the edge makes of the request a player sends for a rewritten link (resolved by
        /// the `url` crate, a WHATWG URL parser as browsers have, then parsed as nginx does)
        /// passes a directory token exactly when the rewrite gave the link one.
        #[test]
        fn a_signed_link_is_one_the_edge_accepts(
            prefix in proptest::sample::select(vec![
                "", "/", "https://cdn.example.com/", "//cdn.example.com/", "HTTP://cdn.example.com/",
                "//other.example/",
            ]),
            segments in proptest::collection::vec(proptest::sample::select(vec![
                "a", "b", "", ".", "..", "%2e", "%2E%2e", ".%2e", "%2F", "%2f..", "..%2F", ";",
                "..;", "a;b=1", "%20", " ", "%25", "%252F", "%41", "%zz", "%00", "\u{e9}", "~",
            ]), 0..8),
            name in proptest::sample::select(vec!["x.ts", "x%2Fy.ts", "%2F.ts", "index.m3u8"]),
        ) {
            let mut link = prefix.to_owned();
            for seg in &segments {
                link.push_str(seg);
                link.push('/');
            }
            link.push_str(name);
            signed_iff_the_edge_accepts(&link)?;
        }
    }

    /// The check of [`a_signed_link_is_one_the_edge_accepts`] for one link.
    fn signed_iff_the_edge_accepts(link: &str) -> Result<(), proptest::test_runner::TestCaseError> {
        use proptest::prop_assert;
        let key = Key::new("secret_key").unwrap();
        let scope = b"/v/w/";
        let body = format!("#EXTM3U\n{link}\n");
        let own = |h: &[u8]| h == b"cdn.example.com";
        let out = sign_each(b"2147483647", scope, scope, &own, |rw| {
            String::from_utf8(rewrite(Kind::Hls, body.as_bytes(), rw)).unwrap()
        });
        let rewritten = out.lines().nth(1).unwrap();
        let signed = rewritten != link;

        let playlist = url::Url::parse("http://cdn.example.com/v/w/master.m3u8").unwrap();
        let Ok(requested) = playlist.join(rewritten) else {
            prop_assert!(!signed, "{link}: a link no player can request is signed");
            return Ok(());
        };
        if requested.host_str() != Some("cdn.example.com") {
            prop_assert!(!signed, "{link}: signed for another host");
            return Ok(());
        }
        let target = match requested.query() {
            Some(q) => format!("{}?{q}", requested.path()),
            None => requested.path().to_owned(),
        };
        match tollgate_token::Target::parse(target.as_bytes()) {
            Ok(t) if signed => {
                let verdict =
                    tollgate_token::verify_in_directory(&t, std::slice::from_ref(&key), None, 0);
                prop_assert!(verdict.is_ok(), "{link}: {target} is refused: {verdict:?}");
                prop_assert!(
                    directory(t.uri()).starts_with(scope),
                    "{link}: signed outside the scope"
                );
            }
            Err(e) => prop_assert!(
                !signed,
                "{link}: signed, and the edge refuses {target}: {e}"
            ),
            Ok(t) => prop_assert!(
                !directory(t.uri()).starts_with(scope),
                "{link}: not signed, and {target} is in the scope"
            ),
        }
        Ok(())
    }
}
