// Command mobile-stub is a simulated phone for Countersign: it enrolls as a
// device, acts as its own Web Push service, shows approval requests on a
// small web page (or decides them automatically with --auto) and signs
// decisions with its device key. It talks to the server over HTTP only;
// the logic lives in mobile-stub/phone. See README.md beside this file.
package main
