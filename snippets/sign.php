<?php
// Prints a signed link for a CDN resource with the secure token on (Tollgate, Gcore, nginx
// secure_link). Run: php sign.php. See docs/signing.md.
$secret   = 'secret_key';               // tollgate:key       the resource's secure key
$base     = 'https://cdn.example.com';  // tollgate:base      scheme and CDN hostname
$path     = '/videos/my film.mp4';      // tollgate:path      the file's path, not URL-encoded
$ip       = '';                         // tollgate:ip        viewer's IP (type 0 resources); '' for type 2
$lifetime = 3600;                       // tollgate:lifetime  seconds the link stays valid
$window   = 0;                          // tollgate:window    round expiry up to a multiple of this; 0: off

$expires = time() + $lifetime;
if ($window > 0) {
    // The same link for every page view in a window, so browsers and the CDN can cache it.
    $expires = intdiv($expires + $window - 1, $window) * $window;
}
$token = rtrim(strtr(base64_encode(md5("$expires$path$ip $secret", true)), '+/', '-_'), '=');
$url_path = implode('/', array_map('rawurlencode', explode('/', $path)));
echo "$base$url_path?md5=$token&expires=$expires\n";
