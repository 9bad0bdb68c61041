print(arg[0])
print(#arg)
for i = 1, #arg do print(arg[i]) end
