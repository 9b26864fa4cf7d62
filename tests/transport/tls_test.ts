/** TLS: with a CA (client certificates, chain verification); first-hop dial failures. */
import assert from "node:assert/strict";
import * as x509 from "@peculiar/x509";
import { cliConfig } from "../../src/builtins.ts";
import { Runtime } from "../../src/runtime.ts";
import { dialTcp } from "../../src/core/socket.ts";
import { echoServer, portForChild, readAll, withTimeout } from "../_helpers.ts";
import { builtinRegistries } from "../../src/builtins.ts";
import { Metadata } from "../../src/core/metadata.ts";
import { silentLogger } from "../../src/core/log.ts";

const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };

function pem(label: string, der: ArrayBuffer): string {
  return `-----BEGIN ${label}-----\n${
    btoa(String.fromCharCode(...new Uint8Array(der))).replace(/.{64}/g, "$&\n")
  }\n-----END ${label}-----\n`;
}

async function issue(
  name: string,
  ca: { cert: x509.X509Certificate; key: CryptoKey } | null,
  isCa = false,
) {
  x509.cryptoProvider.set(crypto);
  const keys = await crypto.subtle.generateKey(alg, true, ["sign", "verify"]);
  const ext = [
    new x509.BasicConstraintsExtension(isCa, undefined, true),
    new x509.SubjectAlternativeNameExtension([{ type: "dns", value: "localhost" }, {
      type: "ip",
      value: "127.0.0.1",
    }]),
  ];
  const base = {
    serialNumber: String(Math.floor(Math.random() * 1e9)),
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: alg,
    extensions: ext,
  };
  const cert = ca
    ? await x509.X509CertificateGenerator.create({
      ...base,
      subject: `CN=${name}`,
      issuer: ca.cert.subject,
      publicKey: keys.publicKey,
      signingKey: ca.key,
    })
    : await x509.X509CertificateGenerator.createSelfSigned({ ...base, name: `CN=${name}`, keys });
  return {
    cert,
    key: keys.privateKey,
    certPem: cert.toString("pem"),
    keyPem: pem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", keys.privateKey)),
  };
}

Deno.test("tls with caFile: a client with a CA-signed certificate gets through; one without is refused", async () => {
  const dir = await Deno.makeTempDir();
  const ca = await issue("Test CA", null, true);
  const server = await issue("localhost", ca);
  const client = await issue("client", ca);
  const write = (n: string, t: string) => Deno.writeTextFile(`${dir}/${n}`, t);
  await Promise.all([
    write("ca.pem", ca.certPem),
    write("server.pem", server.certPem),
    write("server.key", server.keyPem),
    write("client.pem", client.certPem),
    write("client.key", client.keyPem),
  ]);
  const echo = echoServer();
  const srv = await Runtime.start(
    cliConfig([
      `tls://127.0.0.1:0/127.0.0.1:${echo.port}?certFile=${dir}/server.pem&keyFile=${dir}/server.key&caFile=${dir}/ca.pem`,
    ], []),
  );
  const sp = srv.services[0]!.listener.addr.port;
  const good = await Runtime.start(
    cliConfig(["tcp://127.0.0.1:0/127.0.0.1:9"], [
      `forward+tls://127.0.0.1:${sp}?cert=${dir}/client.pem&key=${dir}/client.key&ca=${dir}/ca.pem`,
    ]),
  );
  const bad = await Runtime.start(
    cliConfig(["tcp://127.0.0.1:0/127.0.0.1:9"], [`forward+tls://127.0.0.1:${sp}`]),
  );
  try {
    const talk = async (rt: Runtime) => {
      const c = await dialTcp("127.0.0.1", rt.services[0]!.listener.addr.port);
      await c.write(new TextEncoder().encode("ping"));
      await c.closeWrite();
      const got = await withTimeout(readAll(c).catch(() => new Uint8Array(0)), 5000);
      c.close();
      return new TextDecoder().decode(got);
    };
    assert.equal(await talk(good), "ping");
    assert.equal(await talk(bad), "", "no client certificate: refused");
  } finally {
    await bad.close();
    await good.close();
    await srv.close();
    await echo.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("tls first-hop dial: refused ⇒ an error; a silent server ⇒ aborted by the signal; no leaks", async () => {
  const d = await builtinRegistries().dialers.get("tls")({
    metadata: new Metadata({}),
    log: silentLogger,
  });
  const netDial = () => Promise.reject(new Error("the direct path must not use netDial"));
  const closed = portForChild();
  await assert.rejects(
    d.dial(`127.0.0.1:${closed}`, { netDial, direct: true, log: silentLogger }),
    /tls handshake/,
  );
  // Accepts TCP but never answers the ClientHello.
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of silent) held.push(c);
  })().catch(() => {});
  try {
    const signal = AbortSignal.timeout(300);
    await assert.rejects(
      withTimeout(
        d.dial(`127.0.0.1:${(silent.addr as Deno.NetAddr).port}`, {
          netDial,
          direct: true,
          signal,
          log: silentLogger,
        }),
        5000,
      ),
      /aborted|tls handshake/,
    );
  } finally {
    silent.close();
    for (const c of held) c.close();
    await accepting;
  }
});
