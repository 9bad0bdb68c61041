local function inner()
  error("boom at the top")
end
inner()
