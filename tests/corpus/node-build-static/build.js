const fs = require("fs");
const path = require("path");
fs.mkdirSync("dist/assets", { recursive: true });
for (const f of fs.readdirSync("src")) {
  const body = fs.readFileSync(path.join("src", f), "utf8");
  fs.writeFileSync(path.join("dist", f.replace(/\.md$/, ".html")), `<html><body>${body.trim()}</body></html>\n`);
}
fs.writeFileSync("dist/assets/manifest.json", JSON.stringify(fs.readdirSync("src").sort()) + "\n");
