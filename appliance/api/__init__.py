"""HTTP controllers, thin: validate -> call a service -> return a Struct."""
