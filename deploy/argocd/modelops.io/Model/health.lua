-- Argo CD health of a modelops.io Model. The Model follows kstatus: status.observedGeneration,
-- Ready as the summary, Reconciling=True while a version rolls out or bakes, Stalled=True when
-- only a user can unblock it (rolled back, checksum mismatch, load failure, deadline), and
-- Degraded=True when a promoted version breaks its error-rate threshold.
-- Lua 5.1 without the string library, so it runs from argocd-cm without useOpenLibs.
local function condition(type_)
  for _, c in ipairs(obj.status.conditions or {}) do
    if c.type == type_ then return c end
  end
  return nil
end

local function describe(c, fallback)
  if c == nil then return fallback end
  local text = c.reason or fallback
  if c.message ~= nil and c.message ~= "" then text = text .. ": " .. c.message end
  return text
end

local generation = obj.metadata.generation
if obj.status == nil or obj.status.observedGeneration == nil then
  return { status = "Progressing", message = "Waiting for the operator to observe the Model" }
end
local ready = condition("Ready")
local seen = obj.status.observedGeneration
if ready ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < seen then
  seen = ready.observedGeneration
end
if generation ~= nil and seen < generation then
  return { status = "Progressing",
           message = "Waiting for the operator to observe generation " .. generation }
end
if obj.spec ~= nil and obj.spec.suspend == true then
  return { status = "Suspended", message = "Suspended: spec.suspend is true" }
end
local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  return { status = "Degraded", message = describe(stalled, "Stalled") }
end
local degraded = condition("Degraded")
if degraded ~= nil and degraded.status == "True" then
  return { status = "Degraded", message = describe(degraded, "Degraded") }
end
local reconciling = condition("Reconciling")
local busy = reconciling ~= nil and reconciling.status == "True"
if ready ~= nil and ready.status == "True" and not busy then
  local message = ready.message or ""
  local metrics = condition("MetricsAvailable")
  if metrics ~= nil and metrics.status == "False" then
    message = message .. " (" .. describe(metrics, "MetricsUnavailable") .. ")"
  end
  return { status = "Healthy", message = message }
end
if busy then
  return { status = "Progressing", message = describe(reconciling, "Reconciling") }
end
return { status = "Progressing", message = describe(ready, "Waiting for the Ready condition") }
