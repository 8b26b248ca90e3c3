// Prints a signed link for a CDN resource with the secure token on (Tollgate, Gcore, nginx
// secure_link). Run: node sign.js. See docs/signing.md.
const crypto = require('crypto');

const secret = 'secret_key';              // tollgate:key       the resource's secure key
const base = 'https://cdn.example.com';   // tollgate:base      scheme and CDN hostname
const path = '/videos/my film.mp4';       // tollgate:path      the file's path, not URL-encoded
const ip = '';                            // tollgate:ip        viewer's IP (type 0 resources); '' for type 2
const lifetime = 3600;                    // tollgate:lifetime  seconds the link stays valid
const window = 0;                         // tollgate:window    round expiry up to a multiple of this; 0: off

let expires = Math.floor(Date.now() / 1000) + lifetime;
if (window > 0) {
  // The same link for every page view in a window, so browsers and the CDN can cache it.
  expires = Math.ceil(expires / window) * window;
}
const token = crypto.createHash('md5').update(`${expires}${path}${ip} ${secret}`, 'utf8').digest('base64url');
const urlPath = path.split('/').map(encodeURIComponent).join('/');
console.log(`${base}${urlPath}?md5=${token}&expires=${expires}`);
