-- modelyard close (settle or expiry), version 1
--
-- Closes one open decision atomically: takes its estimate out of `reserved` on every counter it
-- holds, adds the charge to `spent`, appends the ledger row, and removes it from the open set.
-- Idempotent: a decision already settled or expired changes nothing. All keys share the tenant's
-- hash tag {<prefix>:t:<tenant>}.
--
-- KEYS[1]  {tag}:dec:<decision_id>   hash   the decision (see reserve.lua)
-- KEYS[2]  {tag}:open                zset   open decision ids by expires_at
-- KEYS[3]  {tag}:ledger              zset   ledger rows scored by `at`; member =
--                                            "%015d" seq .. "|" .. JSON [decision_id, tenant,
--                                            key_id, model, amount, at, kind]
-- KEYS[4]  {tag}:ledger:seq          string the tenant's ledger sequence
-- KEYS[5..] the counters the decision holds, exactly its `holds` field
--
-- ARGV[1] kind: "settle" | "expiry"    ARGV[2] holds ("\n"-joined KEYS[5..], checked)
-- ARGV[3] settle: actual micros; expiry: "1" to charge the estimate, "0" to release it
-- ARGV[4] now (epoch seconds)          ARGV[5] model used ("" = the routed model)
-- ARGV[6..10] settle only: status, input_tokens, cached_input_tokens, output_tokens, latency_ms
-- TTL rule: no TTL is added; the ledger never expires. The decision keeps the TTL set by reserve.
-- Returns {-1} not found | {1, charged, expired} already closed | {2} not yet due (expiry)
--         | {0, charged} closed now.
local d = redis.call('HMGET', KEYS[1], 'holds', 'settled', 'expired', 'charged_micros',
  'estimate_micros', 'expires_at', 'model', 'decision_id', 'tenant', 'key_id')
if not d[1] or d[1] ~= ARGV[2] then
  return {-1}
end
if d[2] == '1' or d[3] == '1' then
  return {1, tonumber(d[4]), d[3] == '1' and 1 or 0}
end
local kind, now = ARGV[1], ARGV[4]
local amount, amount_s, model
if kind == 'settle' then
  amount, amount_s = tonumber(ARGV[3]), ARGV[3]
  model = ARGV[5] ~= '' and ARGV[5] or d[7]
  redis.call('HSET', KEYS[1], 'settled', '1', 'charged_micros', ARGV[3], 'status', ARGV[6],
    'model_used', model, 'input_tokens', ARGV[7], 'cached_input_tokens', ARGV[8],
    'output_tokens', ARGV[9], 'latency_ms', ARGV[10], 'settled_at', now)
else
  if tonumber(d[6]) > tonumber(now) then
    return {2}
  end
  amount_s = ARGV[3] == '1' and d[5] or '0'
  amount, model = tonumber(amount_s), d[7]
  redis.call('HSET', KEYS[1], 'expired', '1', 'charged_micros', amount_s)
end
local release = d[5] == '0' and '0' or ('-' .. d[5])  -- HINCRBY rejects "-0"
for i = 5, #KEYS do
  redis.call('HINCRBY', KEYS[i], 'reserved', release)
  redis.call('HINCRBY', KEYS[i], 'spent', amount_s)
end
redis.call('ZREM', KEYS[2], d[8])
if kind == 'settle' or amount > 0 then
  local seq = redis.call('INCR', KEYS[4])
  local row = cjson.encode({d[8], d[9], d[10], model, amount_s, now, kind})
  redis.call('ZADD', KEYS[3], now, string.format('%015d', seq) .. '|' .. row)
end
return {0, amount}
