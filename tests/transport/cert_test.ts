import assert from "node:assert/strict";
import * as x509 from "@peculiar/x509";
import { generateCert } from "../../src/transport/tls/cert.ts";

Deno.test("auto certificate: self-signed ECDSA P-256, O=GOST, CN=gost.run, 365 days, server+client auth", async () => {
  const { cert, key } = await generateCert();
  assert.match(key, /^-----BEGIN PRIVATE KEY-----/);
  const c = new x509.X509Certificate(cert);
  assert.equal(c.subject, "CN=gost.run, O=GOST");
  assert.equal(c.issuer, c.subject);
  assert.equal((c.publicKey.algorithm as EcKeyAlgorithm).namedCurve, "P-256");
  const days = (c.notAfter.getTime() - c.notBefore.getTime()) / 86_400_000;
  assert.ok(days > 364 && days < 366);
  const eku = c.getExtension(x509.ExtendedKeyUsageExtension)!;
  assert.deepEqual(
    [...eku.usages].sort(),
    [x509.ExtendedKeyUsage.clientAuth, x509.ExtendedKeyUsage.serverAuth].sort(),
  );
});

Deno.test("auto certificate persists under BURROW_CERT_DIR and is reused", async () => {
  const dir = await Deno.makeTempDir();
  const code = `import { serverCert } from "${
    new URL("../../src/transport/tls/cert.ts", import.meta.url).href
  }";
    const p = await serverCert(undefined); console.log(p.cert.length);`;
  const run = () =>
    new Deno.Command(Deno.execPath(), {
      args: ["eval", "--config", new URL("../../deno.json", import.meta.url).pathname, code],
      env: { BURROW_CERT_DIR: `${dir}/certs` },
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
  try {
    const a = await run();
    assert.equal(a.code, 0, new TextDecoder().decode(a.stderr));
    const first = await Deno.readTextFile(`${dir}/certs/auto-ca-cert.pem`);
    assert.equal((await Deno.stat(`${dir}/certs/auto-ca-key.pem`)).mode! & 0o777, 0o600);
    const b = await run();
    assert.equal(b.code, 0);
    assert.equal(
      await Deno.readTextFile(`${dir}/certs/auto-ca-cert.pem`),
      first,
      "reused, not regenerated",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
