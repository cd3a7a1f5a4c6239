-- Source table shared by every variant (created in a fresh database each time).
CREATE TABLE posts (
    id           bigserial PRIMARY KEY,
    blog_id      int,
    user_id      int,
    is_published bool,
    is_deleted   bool,
    rating       int
);
