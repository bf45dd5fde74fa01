'use strict'
// kafkajs 2.2.4 against chronik-server.  Run: node --test tests/integration/js/
// Needs: build/chronik-server (or CHRONIK_SERVER_BIN), `scripts/setup.sh` (kafkajs in ./node_modules).
//
// kafkajs has no group-less consumer: its consumer is tested in a group (last tests below);
// the produce tests also read records back with kafkajs's own low-level Fetch path (its
// Cluster/Broker classes, the code its consumer uses underneath).

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1'

const { test, before, after } = require('node:test')
const assert = require('node:assert/strict')
const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const { Kafka, CompressionTypes, ConfigResourceTypes, logLevel } = require('kafkajs')
const Cluster = require('kafkajs/src/cluster')
const { createLogger, LEVELS } = require('kafkajs/src/loggers')
const LoggerConsole = require('kafkajs/src/loggers/console')
const defaultSocketFactory = require('kafkajs/src/network/socketFactory')

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..')
const SERVER_BIN = process.env.CHRONIK_SERVER_BIN || path.join(REPO_ROOT, 'build', 'chronik-server')

let srv = null // { proc, port, apiPort, dataDir, logPath, exited }
let kafka = null
let admin = null

function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.unref()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

function canConnect (port) {
  return new Promise(resolve => {
    const sock = net.connect({ host: '127.0.0.1', port })
    sock.once('connect', () => { sock.destroy(); resolve(true) })
    sock.once('error', () => { sock.destroy(); resolve(false) })
  })
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))
const serverOutput = () => (srv && fs.existsSync(srv.logPath) ? fs.readFileSync(srv.logPath, 'utf8').slice(-6000) : '')
const uniqueTopic = prefix => `${prefix}-${Math.random().toString(16).slice(2, 12)}`

async function startServer () {
  assert.ok(fs.existsSync(SERVER_BIN), `server binary ${SERVER_BIN} missing (build with make, or set CHRONIK_SERVER_BIN)`)
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'chronik-js-'))
  const dataDir = path.join(base, 'data')
  fs.mkdirSync(dataDir)
  const port = await freePort()
  let apiPort = await freePort()
  while (apiPort === port) apiPort = await freePort()
  const logPath = path.join(base, 'server.log')
  const logFd = fs.openSync(logPath, 'w')
  const env = {
    ...process.env,
    CHRONIK_DATA_DIR: dataDir,
    CHRONIK_KAFKA_PORT: String(port),
    CHRONIK_BIND: '127.0.0.1',
    CHRONIK_ADVERTISED_ADDR: `127.0.0.1:${port}`,
    CHRONIK_ADVERTISE: `127.0.0.1:${port}`,
    CHRONIK_UNIFIED_API_PORT: String(apiPort),
    CHRONIK_METRICS_PORT: '0',
    CHRONIK_WAL_PROFILE: 'low',
    CHRONIK_DEFAULT_PARTITIONS: '3',
    CHRONIK_LOG_LEVEL: 'info'
  }
  const proc = spawn(SERVER_BIN, ['start'], { env, cwd: dataDir, stdio: ['ignore', logFd, logFd] })
  fs.closeSync(logFd)
  srv = { proc, port, apiPort, dataDir, base, logPath, exited: null }
  proc.on('exit', (code, signal) => { srv.exited = { code, signal } })
  const deadline = Date.now() + 20000
  while (Date.now() < deadline) {
    if (srv.exited) break
    if (await canConnect(port)) return
    await sleep(50)
  }
  const out = serverOutput()
  if (!srv.exited) proc.kill('SIGKILL')
  throw new Error(`chronik-server not accepting connections on 127.0.0.1:${port} ` +
    `(exited: ${JSON.stringify(srv.exited)})\n--- server output ---\n${out}`)
}

async function stopServer () {
  if (!srv) return
  if (!srv.exited) {
    srv.proc.kill('SIGTERM')
    const deadline = Date.now() + 20000
    while (!srv.exited && Date.now() < deadline) await sleep(50)
    if (!srv.exited) {
      srv.proc.kill('SIGKILL')
      throw new Error('chronik-server did not exit within 20 s of SIGTERM')
    }
  }
  assert.deepEqual(srv.exited, { code: 0, signal: null },
    `chronik-server exit after SIGTERM: ${JSON.stringify(srv.exited)}\n${serverOutput()}`)
  fs.rmSync(srv.base, { recursive: true, force: true })
}

// kafkajs's low-level path: a Cluster (metadata + connections) and a Broker's fetch().
async function fetchAll (topic, partition, fromOffset = '0') {
  const cluster = new Cluster({
    logger: createLogger({ level: LEVELS.NOTHING, logCreator: LoggerConsole }),
    socketFactory: defaultSocketFactory(),
    brokers: [`127.0.0.1:${srv.port}`],
    clientId: 'chronik-it-js-fetch',
    connectionTimeout: 3000,
    requestTimeout: 10000,
    enforceRequestTimeout: true,
    retry: { retries: 3 },
    allowAutoTopicCreation: false,
    metadataMaxAge: 300000
  })
  await cluster.connect()
  try {
    await cluster.addTargetTopic(topic)
    const leaders = cluster.findLeaderForPartitions(topic, [partition])
    const nodeId = Object.keys(leaders)[0]
    assert.ok(nodeId !== undefined, `no leader for ${topic}[${partition}]`)
    const broker = await cluster.findBroker({ nodeId })
    const out = []
    let offset = BigInt(fromOffset)
    for (let i = 0; i < 50; i++) {
      const res = await broker.fetch({
        maxWaitTime: 100,
        minBytes: 1,
        maxBytes: 4 * 1024 * 1024,
        topics: [{ topic, partitions: [{ partition, fetchOffset: offset.toString(), maxBytes: 1024 * 1024 }] }]
      })
      const p = res.responses[0].partitions[0]
      assert.equal(p.errorCode, 0)
      const msgs = p.messages.filter(m => BigInt(m.offset) >= offset)
      out.push(...msgs)
      if (msgs.length) offset = BigInt(msgs[msgs.length - 1].offset) + 1n
      if (offset >= BigInt(p.highWatermark)) break
    }
    return out
  } finally {
    await cluster.disconnect()
  }
}

before(async () => {
  await startServer()
  kafka = new Kafka({
    clientId: 'chronik-it-js',
    brokers: [`127.0.0.1:${srv.port}`],
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    requestTimeout: 15000,
    retry: { retries: 5, initialRetryTime: 100 }
  })
  admin = kafka.admin()
  await admin.connect()
})

after(async () => {
  if (admin) await admin.disconnect().catch(() => {})
  await stopServer()
})

test('admin createTopics with configs, fetchTopicMetadata, describeConfigs', async () => {
  const topic = uniqueTopic('js-admin')
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions: 3, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
    timeout: 10000
  })
  assert.equal(created, true)
  // creating it again: kafkajs returns false on TOPIC_ALREADY_EXISTS
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], timeout: 10000 }), false)

  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  assert.equal(md.topics.length, 1)
  assert.equal(md.topics[0].name, topic)
  const parts = md.topics[0].partitions.map(p => p.partitionId).sort()
  assert.deepEqual(parts, [0, 1, 2])
  for (const p of md.topics[0].partitions) {
    assert.equal(p.partitionErrorCode, 0)
    assert.ok(p.leader >= 0)
  }

  const cluster = await admin.describeCluster()
  assert.equal(cluster.brokers.length, 1)
  assert.equal(cluster.brokers[0].host, '127.0.0.1')
  assert.equal(cluster.brokers[0].port, srv.port)

  const cfg = await admin.describeConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms', 'cleanup.policy'] }],
    includeSynonyms: false
  })
  assert.equal(cfg.resources.length, 1)
  assert.equal(cfg.resources[0].errorCode, 0)
  const entries = Object.fromEntries(cfg.resources[0].configEntries.map(e => [e.configName, e.configValue]))
  assert.equal(entries['retention.ms'], '3600000')
  assert.equal(entries['cleanup.policy'], 'delete')

  await admin.alterConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configEntries: [{ name: 'retention.ms', value: '7200000' }] }]
  })
  const cfg2 = await admin.describeConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms'] }]
  })
  assert.equal(cfg2.resources[0].configEntries.find(e => e.configName === 'retention.ms').configValue, '7200000')

  await assert.rejects(
    admin.createTopics({ topics: [{ topic: uniqueTopic('js-bad'), configEntries: [{ name: 'cleanup.policy', value: 'compact' }] }] }),
    err => /INVALID_CONFIG|invalid/i.test(`${err.type} ${err.message} ${JSON.stringify(err.errors || [])}`)
  )
})

test('produce with keys, headers and gzip; read back (offsets + low-level fetch)', async () => {
  const topic = uniqueTopic('js-produce')
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], timeout: 10000 }), true)
  const producer = kafka.producer({ allowAutoTopicCreation: false, idempotent: false })
  await producer.connect()
  const perPartition = { 0: 7, 1: 3, 2: 0 }
  const ts0 = Date.now() - 60000
  try {
    for (const [p, n] of Object.entries(perPartition)) {
      if (n === 0) continue
      const messages = []
      for (let i = 0; i < n; i++) {
        messages.push({
          key: `key-${p}-${i}`,
          value: `value-${p}-${i} `.repeat(10),
          headers: { source: 'kafkajs', idx: String(i) },
          partition: Number(p),
          timestamp: String(ts0 + i * 1000)
        })
      }
      const res = await producer.send({ topic, acks: -1, compression: CompressionTypes.GZIP, messages })
      assert.equal(res.length, 1)
      assert.equal(res[0].topicName, topic)
      assert.equal(res[0].partition, Number(p))
      assert.equal(res[0].errorCode, 0)
      assert.equal(res[0].baseOffset, '0')
    }
    // uncompressed, with a null value, to partition 0
    const res = await producer.send({ topic, acks: 1, messages: [{ key: 'tomb', value: null, partition: 0 }] })
    assert.equal(res[0].baseOffset, '7')
  } finally {
    await producer.disconnect()
  }

  const offsets = await admin.fetchTopicOffsets(topic)
  const byPart = Object.fromEntries(offsets.map(o => [o.partition, o]))
  assert.deepEqual(Object.keys(byPart).map(Number).sort(), [0, 1, 2])
  assert.equal(byPart[0].high, '8')
  assert.equal(byPart[1].high, '3')
  assert.equal(byPart[2].high, '0')
  for (const o of offsets) assert.equal(o.low, '0')

  // ListOffsets by timestamp
  const byTime = await admin.fetchTopicOffsetsByTimestamp(topic, ts0 + 2500)
  assert.equal(byTime.find(o => o.partition === 0).offset, '3')
  assert.equal(byTime.find(o => o.partition === 1).offset, '3') // past the last record: high watermark

  const msgs = await fetchAll(topic, 0)
  assert.equal(msgs.length, 8)
  for (let i = 0; i < 7; i++) {
    const m = msgs[i]
    assert.equal(m.offset, String(i))
    assert.equal(m.key.toString(), `key-0-${i}`)
    assert.equal(m.value.toString(), `value-0-${i} `.repeat(10))
    assert.equal(m.headers.source.toString(), 'kafkajs')
    assert.equal(m.headers.idx.toString(), String(i))
    assert.equal(m.timestamp, String(ts0 + i * 1000))
  }
  assert.equal(msgs[7].key.toString(), 'tomb')
  assert.equal(msgs[7].value, null)

  // cross-check with another client, when kcat is installed
  const kc = spawnSync('kcat', ['-b', `127.0.0.1:${srv.port}`, '-C', '-t', topic, '-p', '1', '-o', 'beginning', '-e',
    '-f', '%o|%k|%h\\n'], { encoding: 'utf8', timeout: 30000 })
  if (!kc.error) {
    assert.equal(kc.status, 0, kc.stderr)
    assert.deepEqual(kc.stdout.trim().split('\n'),
      [0, 1, 2].map(i => `${i}|key-1-${i}|source=kafkajs,idx=${i}`))
  }
})

test('deleteTopicRecords moves the low watermark', async () => {
  const topic = uniqueTopic('js-delrec')
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], timeout: 10000 }), true)
  const producer = kafka.producer({ idempotent: false })
  await producer.connect()
  try {
    await producer.send({ topic, acks: -1, messages: Array.from({ length: 10 }, (_, i) => ({ value: `r${i}`, partition: 0 })) })
  } finally {
    await producer.disconnect()
  }
  // kafkajs looks the partition leader up in its cached metadata before anything else, so
  // the topic must be known to the admin client first (fetchTopicOffsets adds it)
  const before = await admin.fetchTopicOffsets(topic)
  assert.deepEqual(before.map(o => [o.low, o.high]), [['0', '10']])
  try {
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '6' }] })
  } catch (e) {
    throw new Error(`deleteTopicRecords: ${e.message}: ${JSON.stringify((e.partitions || []).map(p => ({ ...p, error: `${p.error}` })))}`)
  }
  const [o] = await admin.fetchTopicOffsets(topic)
  assert.equal(o.low, '6')
  assert.equal(o.high, '10')
  const msgs = await fetchAll(topic, 0, '6')
  assert.deepEqual(msgs.map(m => m.value.toString()), ['r6', 'r7', 'r8', 'r9'])
})

test('createPartitions and deleteTopics', async () => {
  const topic = uniqueTopic('js-del')
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], timeout: 10000 }), true)
  await admin.createPartitions({ topicPartitions: [{ topic, count: 4 }] })
  const md = await admin.fetchTopicMetadata({ topics: [topic] })
  assert.equal(md.topics[0].partitions.length, 4)
  assert.ok((await admin.listTopics()).includes(topic))
  await admin.deleteTopics({ topics: [topic], timeout: 10000 })
  let listed = true
  const deadline = Date.now() + 10000
  while (Date.now() < deadline && (listed = (await admin.listTopics()).includes(topic))) await sleep(100)
  assert.equal(listed, false, 'deleted topic still listed')
})

test('consumer group: two kafkajs members share the partitions, commit, and a new member resumes', async () => {
  const topic = `js-grp-${Date.now()}`
  const groupId = `js-g-${Date.now()}`
  await admin.createTopics({ topics: [{ topic, numPartitions: 4 }] })
  const producer = kafka.producer()
  await producer.connect()
  await producer.send({ topic, messages: Array.from({ length: 40 }, (_, i) => ({ value: String(i), partition: i % 4 })) })
  const seen = new Set()
  const assigned = {}
  const members = []
  for (const name of ['a', 'b']) {
    const c = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500, rebalanceTimeout: 10000 })
    await c.connect()
    c.on(c.events.GROUP_JOIN, e => { assigned[name] = e.payload.memberAssignment[topic] || [] })
    await c.subscribe({ topic, fromBeginning: true })
    await c.run({ eachMessage: async ({ message }) => { seen.add(Number(message.value.toString())) } })
    members.push(c)
  }
  const deadline = Date.now() + 30000
  while ((seen.size < 40 || Object.keys(assigned).length < 2 ||
          (assigned.a || []).length + (assigned.b || []).length !== 4) && Date.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  assert.equal(seen.size, 40)
  const all = [...(assigned.a || []), ...(assigned.b || [])].sort()
  assert.deepEqual(all, [0, 1, 2, 3]) // every partition has exactly one owner
  // kafkajs commits after each batch; a commit that races a rebalance is refused and the
  // batch is consumed again, so wait for the committed offsets to reach the end
  const committedSum = async () => {
    const offsets = await admin.fetchOffsets({ groupId, topics: [topic] })
    return offsets[0].partitions.map(p => Math.max(0, Number(p.offset))).reduce((x, y) => x + y, 0)
  }
  let committed = 0
  const d1 = Date.now() + 20000
  while ((committed = await committedSum()) < 40 && Date.now() < d1) {
    await new Promise(resolve => setTimeout(resolve, 200))
  }
  assert.equal(committed, 40)
  for (const c of members) await c.disconnect() // leaves the group
  // a new member of the group starts after the committed offsets
  await producer.send({ topic, messages: [{ value: '40', partition: 0 }] })
  const later = []
  const c = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 })
  await c.connect()
  await c.subscribe({ topic, fromBeginning: true })
  await c.run({ eachMessage: async ({ message }) => { later.push(Number(message.value.toString())) } })
  const d2 = Date.now() + 20000
  while (later.length < 1 && Date.now() < d2) await new Promise(resolve => setTimeout(resolve, 200))
  await new Promise(resolve => setTimeout(resolve, 500))
  await c.disconnect()
  await producer.disconnect()
  assert.deepEqual(later, [40])
  const groups = await admin.listGroups()
  assert.ok(groups.groups.some(g => g.groupId === groupId))
})
