-- modelyard reserve, version 1
--
-- Records one decision and holds its estimate on every counter, atomically; idempotent on
-- request_id. Every key is under the tenant's hash tag {<prefix>:t:<tenant>} (one cluster slot).
--
-- KEYS[1]  {tag}:req:<request_id>      string  -> decision_id
-- KEYS[2]  {tag}:dec:<decision_id>     hash    the decision record (fields as in DecisionRecord,
--                                               plus `holds`: the counter keys, "\n"-joined)
-- KEYS[3]  {tag}:open                  zset    open decision ids scored by expires_at
-- KEYS[4]  {tag}:job:<job_id>          list    decision ids of the job in creation order
-- KEYS[5..4+n] {tag}:c:<scope>:<subject>:<window>:<window_start>  hash {spent, reserved}
--
-- ARGV: decision_id, estimate, expires_at, record_ttl_s, n, ttl_1..ttl_n, m,
--       (counter_index, hard) x m in limit order, then field/value pairs of the record.
-- TTL rule: a counter lives until its window resets plus the retention (ttl_i, computed by the
-- caller from logical time); a decision, its request id and its job list live record_ttl_s.
-- Returns {0} reserved | {1, decision_id} replay | {2, limit_position, spent, reserved} refused.
local existing = redis.call('GET', KEYS[1])
if existing then
  return {1, existing}
end
local estimate = tonumber(ARGV[2])
local n = tonumber(ARGV[5])
local m = tonumber(ARGV[6 + n])
local base = 6 + n
for i = 1, m do
  local idx = tonumber(ARGV[base + 2 * i - 1])
  local hard = tonumber(ARGV[base + 2 * i])
  local c = redis.call('HMGET', KEYS[4 + idx], 'spent', 'reserved')
  local spent, reserved = tonumber(c[1] or '0'), tonumber(c[2] or '0')
  if spent + reserved + estimate > hard then
    return {2, i, spent, reserved}
  end
end
local record_ttl = tonumber(ARGV[4])
local fields = {}
for j = base + 2 * m + 1, #ARGV do
  fields[#fields + 1] = ARGV[j]
end
redis.call('HSET', KEYS[2], unpack(fields))
redis.call('EXPIRE', KEYS[2], record_ttl)
redis.call('SET', KEYS[1], ARGV[1], 'EX', record_ttl)
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('RPUSH', KEYS[4], ARGV[1])
redis.call('EXPIRE', KEYS[4], record_ttl)
for i = 1, n do
  redis.call('HINCRBY', KEYS[4 + i], 'reserved', estimate)
  redis.call('HSETNX', KEYS[4 + i], 'spent', 0)
  redis.call('EXPIRE', KEYS[4 + i], tonumber(ARGV[5 + i]))
end
return {0}
