package silo

import "context"

// ProjectService reads and writes the projects of the tenant in the
// context. Every engine (SQLite, PostgreSQL) implements it, as does the
// router that picks one by placement.
type ProjectService interface {
	CreateProject(ctx context.Context, name string) (*Project, error)
	Project(ctx context.Context, id string) (*Project, error)
	Projects(ctx context.Context, page Page, f ProjectFilter) ([]*Project, string, error)
	UpdateProject(ctx context.Context, id string, upd ProjectUpdate) (*Project, error)
	DeleteProject(ctx context.Context, id string) error
}

// TaskService reads and writes the tasks of the tenant in the context.
type TaskService interface {
	CreateTask(ctx context.Context, projectID string, nt NewTask) (*Task, error)
	Task(ctx context.Context, id string) (*Task, error)
	Tasks(ctx context.Context, projectID string, page Page) ([]*Task, string, error)
	UpdateTask(ctx context.Context, id string, upd TaskUpdate) (*Task, error)
	DeleteTask(ctx context.Context, id string) error
}
