// A streaming LLM client on Node's own fetch, the way JavaScript SDKs call
// an API: POSTs a JSON body and reads the response as it arrives. The
// request headers come as a JSON object in the E2E_HEADERS environment
// variable, so that credentials never appear on the command line. Prints the
// status and the number of body bytes read.
const [url, body] = process.argv.slice(2);
const headers = { "content-type": "application/json", ...JSON.parse(process.env.E2E_HEADERS || "{}") };
const res = await fetch(url, { method: "POST", headers, body });
let bytes = 0;
for await (const chunk of res.body) {
  bytes += chunk.length;
}
console.log(JSON.stringify({ status: res.status, bytes }));
