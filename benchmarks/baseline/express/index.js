// The baseline for bench_intake: a minimal Express + multer + amqplib upload gateway, as the original was.
// POST /v1/jobs (multipart "image", Authorization: Bearer <key>) -> the image held in memory (multer
// memoryStorage), a small JSON message published to a non-durable queue without persistence or publisher
// confirms -> 202 JSON. Nothing is stored: a crash or a broker restart loses every job. That is the point of
// comparison: how fast an upload endpoint is when it does no durable work.
//
// Environment: PORT, QUEUE (declared non-durable; delete it afterwards), AMQP_URL, API_KEY.
"use strict";

const crypto = require("crypto");
const express = require("express");
const multer = require("multer");
const amqp = require("amqplib");

const port = Number(process.env.PORT || 8090);
const queue = process.env.QUEUE || "baseline.jobs";
const amqpUrl = process.env.AMQP_URL || "amqp://guest:guest@127.0.0.1:5672/";
const expected = `Bearer ${process.env.API_KEY || ""}`;
const upload = multer({ storage: multer.memoryStorage(), limits: { fileSize: 20 * 1024 * 1024 } });

async function main() {
  const connection = await amqp.connect(amqpUrl);
  const channel = await connection.createChannel();
  await channel.assertQueue(queue, { durable: false });

  const app = express();
  app.disable("x-powered-by");
  app.get("/healthz", (_req, res) => res.json({ ok: true }));
  app.post(
    "/v1/jobs",
    (req, res, next) => (req.get("authorization") === expected ? next() : res.status(401).json({ error: "unauthorized" })),
    upload.single("image"),
    (req, res) => {
      if (!req.file || !req.file.size) {
        res.status(400).json({ error: "no_image" });
        return;
      }
      const jobId = crypto.randomUUID().replace(/-/g, "");
      const body = JSON.stringify({ job_id: jobId, size: req.file.size, mimetype: req.file.mimetype });
      channel.sendToQueue(queue, Buffer.from(body), { persistent: false, messageId: jobId, contentType: "application/json" });
      res.status(202).json({ job_id: jobId, status: "queued" });
    },
  );
  const server = app.listen(port, "127.0.0.1", () => console.log(`baseline listening on 127.0.0.1:${port}`));
  const stop = () => server.close(() => connection.close().finally(() => process.exit(0)));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
