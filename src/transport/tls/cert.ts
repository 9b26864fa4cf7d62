/**
 * TLS certificates (docs/gost-config.md §4.5): configured files, `./cert.pem` + `./key.pem` in the working
 * directory, else an automatically generated self-signed ECDSA P-256 certificate (O=GOST,
 * CN=gost.run, 365 days), made once per process with `@peculiar/x509` over WebCrypto.
 * @module
 */
import { ConfigError, errorText } from "../../core/errors.ts";
import type { TlsOptions } from "../../core/types.ts";

/** PEM certificate chain and private key. */
export interface CertPair {
  cert: string;
  key: string;
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = btoa(String.fromCharCode(...new Uint8Array(der)));
  return `-----BEGIN ${label}-----\n${
    b64.replace(/.{64}/g, "$&\n").replace(/\n$/, "")
  }\n-----END ${label}-----\n`;
}

/** Generates a self-signed ECDSA P-256 certificate like GOST's. */
export async function generateCert(
  commonName = "gost.run",
  organization = "GOST",
  days = 365,
): Promise<CertPair> {
  // Loaded on first use: most runs never need an automatic certificate.
  const x509 = await import("@peculiar/x509");
  x509.cryptoProvider.set(crypto);
  const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const keys = await crypto.subtle.generateKey(alg, true, ["sign", "verify"]);
  const serial = Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.replace(/^[89a-f]/, "1"),
    name: `CN=${commonName}, O=${organization}`,
    notBefore: new Date(),
    notAfter: new Date(Date.now() + days * 86_400_000),
    signingAlgorithm: alg,
    keys,
    extensions: [
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      new x509.SubjectAlternativeNameExtension([{ type: "dns", value: commonName }]),
    ],
  });
  return {
    cert: cert.toString("pem"),
    key: pem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", keys.privateKey)),
  };
}

let auto: Promise<CertPair> | undefined;

async function readPair(certFile: string, keyFile: string, path: string): Promise<CertPair> {
  try {
    return { cert: await Deno.readTextFile(certFile), key: await Deno.readTextFile(keyFile) };
  } catch (e) {
    throw new ConfigError(path, `cannot read certificate: ${errorText(e)}`);
  }
}

/** The server certificate for a listener: configured files, ./cert.pem, else the auto cert. */
export async function serverCert(tls: TlsOptions | undefined, path = "tls"): Promise<CertPair> {
  if (tls?.certFile) {
    if (!tls.keyFile) throw new ConfigError(`${path}.keyFile`, "a certFile needs a keyFile");
    return await readPair(tls.certFile, tls.keyFile, path);
  }
  try {
    return { cert: await Deno.readTextFile("cert.pem"), key: await Deno.readTextFile("key.pem") };
  } catch { /* none in the working directory */ }
  auto ??= autoCert();
  return await auto;
}

/**
 * The automatic certificate. With `BURROW_CERT_DIR` set it lives in that folder
 * (`auto-ca-cert.pem`, `auto-ca-key.pem`, key mode 0600, as GOST keeps it in ~/.gost): loaded
 * when present, generated and saved otherwise, so clients can pin it across restarts.
 * Without it, a fresh certificate is made per process (GOST 3.2.6's behaviour).
 */
async function autoCert(): Promise<CertPair> {
  const dir = Deno.env.get("BURROW_CERT_DIR");
  if (!dir) return await generateCert();
  const certPath = `${dir}/auto-ca-cert.pem`;
  const keyPath = `${dir}/auto-ca-key.pem`;
  try {
    return { cert: await Deno.readTextFile(certPath), key: await Deno.readTextFile(keyPath) };
  } catch { /* not there yet */ }
  const pair = await generateCert();
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  await Deno.writeTextFile(keyPath, pair.key, { mode: 0o600 });
  await Deno.writeTextFile(certPath, pair.cert);
  return pair;
}
